//! Paths in the plan as they are on the host, whatever their bytes: a
//! UTF-8 path is a JSON string (as serde writes it by default), any other
//! one an array of its bytes. serde's own encoding fails on a path that is
//! not UTF-8, and the project's file names are chosen by whoever wrote
//! them (an earlier session among them): such a name must neither stop
//! guard nor lose its hide or redact mount.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Owned {
    Text(String),
    Bytes(Vec<u8>),
}

pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    match p.to_str() {
        Some(t) => Repr::Text(t),
        None => Repr::Bytes(p.as_os_str().as_bytes()),
    }
    .serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(match Owned::deserialize(d)? {
        Owned::Text(t) => PathBuf::from(t),
        Owned::Bytes(b) => PathBuf::from(OsString::from_vec(b)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct W {
        #[serde(with = "super")]
        p: PathBuf,
    }

    #[test]
    fn any_path_round_trips_and_utf8_reads_as_before() {
        let plain = W {
            p: PathBuf::from("/p/.env"),
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"p":"/p/.env"}"#);
        assert_eq!(serde_json::from_str::<W>(&json).unwrap(), plain);
        let odd = W {
            p: PathBuf::from(OsString::from_vec(b"/p/id_rsa\x9b".to_vec())),
        };
        let json = serde_json::to_string(&odd).unwrap();
        assert_eq!(serde_json::from_str::<W>(&json).unwrap(), odd);
    }
}
