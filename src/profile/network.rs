//! The `[network]` table of a profile.
//!
//! ```toml
//! [network]
//! allow = [
//!   "api.anthropic.com",                        # ports 443 and 80
//!   "*.githubusercontent.com",                  # any subdomain, not the apex
//!   "github.com:22",                            # one port only
//!   { host = "api.internal", private = true },  # may resolve to a private address
//! ]
//!
//! [network.hosts]              # fixed addresses, like curl --resolve
//! "api.internal" = "10.1.2.3"  # still needs an allow rule (with private = true)
//! ```
//!
//! Every entry is validated while parsing, so a bad one is reported with
//! its file, line and column.

use crate::net::Allowlist;
use crate::net::allowlist::{HostPattern, Rule, normalize_name, parse_rule};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Destinations the sandbox may reach.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// Names answered with a fixed address instead of DNS.
    #[serde(default)]
    pub hosts: BTreeMap<String, PinnedAddr>,
    /// No egress at all, whatever other layers allow (the `offline` profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Package registries to allow, each as its own tool is configured to
    /// use it (asked at start; guard names no registry host itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<Registry>,
}

/// A package manager whose configured registry guard looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// `registry` (and `@scope:registry`) from the user's and the global
    /// npm configuration, or npm's own default as `npm config get` reports it.
    Npm,
    /// `index-url` and `extra-index-url` from the environment and the
    /// user's and the global pip configuration, or pip's own default index
    /// and file host as pip reports them.
    Pip,
    /// The indexes of the user's cargo config (`[registries]`, replacement
    /// `[source]`s) and cargo's own default as cargo reaches for it, each
    /// with the download host the host's cargo cache records for it.
    Cargo,
    /// `GOPROXY` and `GOSUMDB` as `go env` reports them.
    Go,
}

/// One `allow` entry: a string, or a table with an opt-in.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowEntry {
    pub raw: String,
    pub host: HostPattern,
    pub port: Option<u16>,
    /// Non-public addresses (loopback, private, link-local, ...) allowed.
    pub private: bool,
}

impl AllowEntry {
    pub fn parse(raw: &str, private: bool) -> Result<AllowEntry, String> {
        let (host, port) = parse_rule(raw)?;
        Ok(AllowEntry {
            raw: raw.to_string(),
            host,
            port,
            private,
        })
    }
}

impl Serialize for AllowEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.private {
            #[derive(Serialize)]
            struct T<'a> {
                host: &'a str,
                private: bool,
            }
            T {
                host: &self.raw,
                private: true,
            }
            .serialize(s)
        } else {
            s.serialize_str(&self.raw)
        }
    }
}

impl<'de> Deserialize<'de> for AllowEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AllowEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a host (\"example.com\", \"*.example.com\", \"example.com:8443\", \"203.0.113.7\") \
                     or a table { host = \"...\", private = true }",
                )
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<AllowEntry, E> {
                AllowEntry::parse(s, false).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AllowEntry, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Table {
                    host: String,
                    #[serde(default)]
                    private: bool,
                }
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                AllowEntry::parse(&t.host, t.private).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A `[network.hosts]` value: one IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinnedAddr(pub IpAddr);

impl Serialize for PinnedAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PinnedAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(PinnedAddr)
            .map_err(|_| de::Error::custom(format!("{s:?} is not an IP address")))
    }
}

impl Network {
    /// The rules and pins, labelled with where they came from. Pinned names
    /// that are not valid are dropped here; `validate` reports them.
    pub fn allowlist(&self, origin: &str) -> Allowlist {
        Allowlist {
            rules: self
                .allow
                .iter()
                .map(|a| Rule {
                    host: a.host.clone(),
                    port: a.port,
                    private: a.private,
                    origin: origin.to_string(),
                })
                .collect(),
            hosts: self
                .hosts
                .iter()
                .filter_map(|(n, a)| Some((normalize_name(n).ok()?, a.0)))
                .collect(),
        }
    }

    /// Checks across entries: pinned names must be valid and allowed.
    /// Returns (offending key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let allow = self.allowlist("");
        for name in self.hosts.keys() {
            let n = normalize_name(name)
                .map_err(|e| (name.clone(), format!("[network.hosts] {name:?}: {e}")))?;
            if !allow.names(&n) {
                return Err((
                    name.clone(),
                    format!("[network.hosts] pins {name:?}, but no `allow` entry names it"),
                ));
            }
        }
        Ok(())
    }
}
