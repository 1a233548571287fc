//! Git's object files, read and rewritten: loose objects, pack indexes
//! (version 2, SHA-1) and packs. Just enough of the format to read every
//! object (resolving deltas) and to write a copy of a pack in which chosen
//! objects have other content.
//!
//! Threat model: the files come from a repository the user cloned, so they
//! may be hostile. Every length and offset is checked against the bytes at
//! hand, inflated sizes are bounded before memory is given, delta chains
//! are bounded in depth; a malformed file is an error, never a panic.
//!
//! Format references: git's Documentation/gitformat-pack.txt.

use flate2::{Compression, Decompress, FlushDecompress, Status};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;

pub type Oid = [u8; 20];

pub const COMMIT: u8 = 1;
pub const TREE: u8 = 2;
pub const BLOB: u8 = 3;
pub const TAG: u8 = 4;
const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;

/// Objects larger than this are not inflated (nor is anything built on
/// them): the scan reads text files up to 2 MiB, and a bound keeps a
/// hostile size field from asking for gigabytes.
pub const MAX_OBJECT: u64 = 16 << 20;
/// Longer delta chains are refused (git's default depth is 50).
const MAX_DEPTH: usize = 1000;

pub type FormatResult<T> = std::result::Result<T, String>;

fn be32(b: &[u8], at: usize) -> FormatResult<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| "truncated".to_string())
}

fn be64(b: &[u8], at: usize) -> FormatResult<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| "truncated".to_string())
}

pub fn hex(oid: &Oid) -> String {
    oid.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hex(s: &str) -> Option<Oid> {
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A pack index: object names in sorted order, with each one's CRC-32 and
/// offset in the pack.
#[derive(Debug, Clone)]
pub struct Index {
    pub oids: Vec<Oid>,
    pub crcs: Vec<u32>,
    pub offsets: Vec<u64>,
    /// The pack's trailing checksum, as recorded in the index.
    pub pack_sum: [u8; 20],
}

const IDX_MAGIC: &[u8] = b"\xfftOc";

impl Index {
    pub fn parse(b: &[u8]) -> FormatResult<Index> {
        if b.get(..4) != Some(IDX_MAGIC) || be32(b, 4)? != 2 {
            return Err("not a version 2 pack index".into());
        }
        let fanout = 8;
        let n = be32(b, fanout + 255 * 4)? as usize;
        let oids_at = fanout + 256 * 4;
        let crc_at = oids_at + n * 20;
        let off_at = crc_at + n * 4;
        let large_at = off_at + n * 4;
        if b.len() < large_at + 40 {
            return Err("index shorter than its object count".into());
        }
        let mut large = 0usize;
        let mut small = Vec::with_capacity(n);
        for i in 0..n {
            let o = be32(b, off_at + 4 * i)?;
            if o & 0x8000_0000 != 0 {
                large += 1;
            }
            small.push(o);
        }
        // A SHA-256 repository's index has other lengths: refuse, never
        // misread.
        if b.len() != large_at + 8 * large + 40 {
            return Err("index size does not match a SHA-1 index".into());
        }
        let mut offsets = Vec::with_capacity(n);
        for o in small {
            offsets.push(if o & 0x8000_0000 != 0 {
                be64(b, large_at + 8 * (o & 0x7fff_ffff) as usize)?
            } else {
                u64::from(o)
            });
        }
        let mut oids = Vec::with_capacity(n);
        let mut crcs = Vec::with_capacity(n);
        for i in 0..n {
            let mut oid = [0u8; 20];
            oid.copy_from_slice(&b[oids_at + 20 * i..oids_at + 20 * i + 20]);
            oids.push(oid);
            crcs.push(be32(b, crc_at + 4 * i)?);
        }
        if oids.windows(2).any(|w| w[0] >= w[1]) {
            return Err("index names are not sorted".into());
        }
        let at = large_at + 8 * large;
        let mut pack_sum = [0u8; 20];
        pack_sum.copy_from_slice(&b[at..at + 20]);
        Ok(Index {
            oids,
            crcs,
            offsets,
            pack_sum,
        })
    }

    pub fn find(&self, oid: &Oid) -> Option<usize> {
        self.oids.binary_search(oid).ok()
    }

    /// Where `oid` is in the index file `b`, read in place: finding a few
    /// names must not cost a parse of the whole index on every start (an
    /// index of a million objects is 28 MB).
    pub fn position(b: &[u8], oid: &Oid) -> Option<usize> {
        if b.get(..4) != Some(IDX_MAGIC) || be32(b, 4).ok()? != 2 {
            return None;
        }
        // fanout[k]: how many names start with a byte <= k.
        let fanout = |k: usize| be32(b, 8 + 4 * k).ok().map(|v| v as usize);
        let first = usize::from(oid[0]);
        let mut lo = if first == 0 { 0 } else { fanout(first - 1)? };
        let mut hi = fanout(first)?;
        let name = |i: usize| b.get(8 + 1024 + 20 * i..8 + 1024 + 20 * i + 20);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match name(mid)?.cmp(&oid[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// The index file for these entries. The trailing checksum of the
    /// index itself is left zero: git does not check it when reading, and
    /// this copy exists only for the sandbox's view.
    pub fn write(&self) -> Vec<u8> {
        let n = self.oids.len();
        let mut out = Vec::with_capacity(8 + 1024 + n * 28 + 40);
        out.extend_from_slice(IDX_MAGIC);
        out.extend_from_slice(&2u32.to_be_bytes());
        let mut count = [0u32; 256];
        for oid in &self.oids {
            count[oid[0] as usize] += 1;
        }
        let mut total = 0u32;
        for c in count {
            total += c;
            out.extend_from_slice(&total.to_be_bytes());
        }
        for oid in &self.oids {
            out.extend_from_slice(oid);
        }
        for crc in &self.crcs {
            out.extend_from_slice(&crc.to_be_bytes());
        }
        let mut large = Vec::new();
        for &o in &self.offsets {
            if o < 0x8000_0000 {
                out.extend_from_slice(&(o as u32).to_be_bytes());
            } else {
                out.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
                large.push(o);
            }
        }
        for o in large {
            out.extend_from_slice(&o.to_be_bytes());
        }
        out.extend_from_slice(&self.pack_sum);
        out.extend_from_slice(&[0u8; 20]);
        out
    }
}

/// Where an entry's delta base is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    None,
    /// Absolute offset of the base in the same pack.
    Offset(u64),
    Name(Oid),
}

/// One entry's header.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub kind: u8,
    /// Inflated size of the entry's data (for a delta: of the delta).
    pub size: u64,
    pub base: Base,
    /// Bytes of the type/size header (before any base reference).
    pub type_len: usize,
    /// Where the compressed data starts.
    pub data: usize,
}

pub fn parse_entry(pack: &[u8], at: usize) -> FormatResult<Entry> {
    let byte = |i: usize| pack.get(i).copied().ok_or("entry past the end".to_string());
    let mut i = at;
    let mut c = byte(i)?;
    i += 1;
    let kind = (c >> 4) & 7;
    let mut size = u64::from(c & 15);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte(i)?;
        i += 1;
        if shift > 57 {
            return Err("entry size too long".into());
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    let type_len = i - at;
    let base = match kind {
        COMMIT | TREE | BLOB | TAG => Base::None,
        OFS_DELTA => {
            c = byte(i)?;
            i += 1;
            let mut off = u64::from(c & 0x7f);
            while c & 0x80 != 0 {
                c = byte(i)?;
                i += 1;
                if off > (u64::MAX >> 8) {
                    return Err("delta offset too long".into());
                }
                off = ((off + 1) << 7) | u64::from(c & 0x7f);
            }
            let base = (at as u64)
                .checked_sub(off)
                .filter(|_| off > 0)
                .ok_or("delta base outside the pack")?;
            Base::Offset(base)
        }
        REF_DELTA => {
            let mut oid = [0u8; 20];
            oid.copy_from_slice(pack.get(i..i + 20).ok_or("entry past the end")?);
            i += 20;
            Base::Name(oid)
        }
        k => return Err(format!("unknown object type {k}")),
    };
    Ok(Entry {
        kind,
        size,
        base,
        type_len,
        data: i,
    })
}

/// Inflate a zlib stream that must produce exactly `size` bytes.
pub fn inflate(data: &[u8], size: u64) -> FormatResult<Vec<u8>> {
    if size > MAX_OBJECT {
        return Err("object too large".into());
    }
    let mut out = Vec::with_capacity(size as usize);
    let mut z = Decompress::new(true);
    loop {
        let before_in = z.total_in() as usize;
        let before_out = out.len();
        let status = z
            .decompress_vec(
                data.get(before_in..).unwrap_or(&[]),
                &mut out,
                FlushDecompress::Finish,
            )
            .map_err(|e| format!("inflate: {e}"))?;
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                if out.len() as u64 >= size {
                    // Room is exhausted but the stream goes on: one byte
                    // more tells whether it is longer than announced.
                    if out.capacity() == out.len() {
                        out.reserve(1);
                    }
                    if out.len() as u64 > size {
                        return Err("object longer than its header says".into());
                    }
                }
                if z.total_in() as usize == before_in && out.len() == before_out {
                    return Err("truncated compressed data".into());
                }
            }
        }
    }
    if out.len() as u64 != size {
        return Err("object size differs from its header".into());
    }
    Ok(out)
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(data);
    z.finish().unwrap_or_default()
}

fn varint(d: &[u8], at: &mut usize) -> FormatResult<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let c = *d.get(*at).ok_or("truncated delta")?;
        *at += 1;
        if shift > 63 {
            return Err("delta size too long".into());
        }
        v |= u64::from(c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Apply a git delta to its base.
pub fn apply_delta(base: &[u8], delta: &[u8]) -> FormatResult<Vec<u8>> {
    let mut at = 0;
    if varint(delta, &mut at)? != base.len() as u64 {
        return Err("delta base size mismatch".into());
    }
    let size = varint(delta, &mut at)?;
    if size > MAX_OBJECT {
        return Err("object too large".into());
    }
    let mut out = Vec::with_capacity(size as usize);
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            let mut off = 0usize;
            let mut len = 0usize;
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    off |= usize::from(*delta.get(at).ok_or("truncated delta")?) << (8 * i);
                    at += 1;
                }
            }
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    len |= usize::from(*delta.get(at).ok_or("truncated delta")?) << (8 * i);
                    at += 1;
                }
            }
            if len == 0 {
                len = 0x10000;
            }
            let src = base
                .get(off..off.checked_add(len).ok_or("bad delta copy")?)
                .ok_or("delta copy outside its base")?;
            out.extend_from_slice(src);
        } else if op != 0 {
            let n = usize::from(op);
            out.extend_from_slice(delta.get(at..at + n).ok_or("truncated delta")?);
            at += n;
        } else {
            return Err("reserved delta opcode".into());
        }
        if out.len() as u64 > size {
            return Err("delta result longer than announced".into());
        }
    }
    if out.len() as u64 != size {
        return Err("delta result size mismatch".into());
    }
    Ok(out)
}

/// A resolved object: its type and full content.
pub type Object = Rc<(u8, Vec<u8>)>;

/// Reads objects of one pack by offset, resolving delta chains, with a
/// bounded cache of resolved objects (bases are usually used many times).
pub struct Reader<'a> {
    pub pack: &'a [u8],
    pub index: &'a Index,
    cache: HashMap<u64, Object>,
    order: VecDeque<u64>,
    cached_bytes: usize,
    /// Bytes of objects resolved so far, and how many the pack may give.
    produced: u64,
    budget: u64,
}

const CACHE_BYTES: usize = 96 << 20;

/// What a pack may expand to, all reads together: a few bytes of delta
/// can rebuild a 16 MiB object, so a small hostile pack of long chains of
/// such deltas would otherwise keep guard copying terabytes before every
/// run. Real packs expand far less than this (their content is compressed
/// text and deltas of it).
fn budget(pack_len: usize) -> u64 {
    (2 << 30) + 512 * pack_len as u64
}

/// What a step down a delta chain costs from the budget: a hostile pack's
/// chains of a thousand links, walked from each of their objects, build
/// nothing but take time.
const STEP: u64 = 1024;

pub const EXHAUSTED: &str = "pack expands to far more than its size";

impl<'a> Reader<'a> {
    pub fn new(pack: &'a [u8], index: &'a Index) -> FormatResult<Reader<'a>> {
        if pack.get(..4) != Some(b"PACK") || !matches!(be32(pack, 4)?, 2 | 3) {
            return Err("not a version 2 pack".into());
        }
        if be32(pack, 8)? as usize != index.oids.len() || pack.len() < 32 {
            return Err("pack and index disagree on the object count".into());
        }
        if pack[pack.len() - 20..] != index.pack_sum {
            return Err("pack checksum differs from its index".into());
        }
        Ok(Reader {
            pack,
            index,
            cache: HashMap::new(),
            order: VecDeque::new(),
            cached_bytes: 0,
            produced: 0,
            budget: budget(pack.len()),
        })
    }

    /// Whether reads failed for the budget: objects left unread.
    pub fn exhausted(&self) -> bool {
        self.produced > self.budget
    }

    /// Count an object about to be built: an error once the pack has given
    /// more than its budget.
    fn spend(&mut self, size: u64) -> FormatResult<()> {
        self.produced = self.produced.saturating_add(size);
        if self.produced > self.budget {
            return Err(EXHAUSTED.into());
        }
        Ok(())
    }

    fn remember(&mut self, offset: u64, obj: &Object) {
        let len = obj.1.len();
        if len > CACHE_BYTES / 4 {
            return;
        }
        while self.cached_bytes + len > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(o) = self.cache.remove(&old) {
                self.cached_bytes -= o.1.len();
            }
        }
        if self.cache.insert(offset, obj.clone()).is_none() {
            self.order.push_back(offset);
            self.cached_bytes += len;
        }
    }

    /// The entry at `offset` and where its compressed data ends (the next
    /// entry, or the trailer).
    pub fn entry(&self, offset: u64) -> FormatResult<Entry> {
        let at = usize::try_from(offset).map_err(|_| "offset too large")?;
        if at < 12 || at >= self.pack.len() - 20 {
            return Err("offset outside the pack".into());
        }
        parse_entry(&self.pack[..self.pack.len() - 20], at)
    }

    pub fn read(&mut self, offset: u64) -> FormatResult<Object> {
        if self.exhausted() {
            return Err(EXHAUSTED.into());
        }
        // Walk down to a cached object or a whole one, then apply the
        // deltas back up, remembering each step (each is a base).
        let mut chain: Vec<(u64, Entry)> = Vec::new();
        let mut at = offset;
        let mut obj = loop {
            if let Some(o) = self.cache.get(&at) {
                break o.clone();
            }
            self.spend(STEP)?;
            let e = self.entry(at)?;
            let data = &self.pack[e.data..self.pack.len() - 20];
            match e.base {
                Base::None => {
                    self.spend(e.size)?;
                    let o: Object = Rc::new((e.kind, inflate(data, e.size)?));
                    self.remember(at, &o);
                    break o;
                }
                Base::Offset(b) => {
                    chain.push((at, e));
                    at = b;
                }
                Base::Name(oid) => {
                    chain.push((at, e));
                    let i = self.index.find(&oid).ok_or("delta base not in this pack")?;
                    at = self.index.offsets[i];
                }
            }
            if chain.len() > MAX_DEPTH {
                return Err("delta chain too deep (or a loop)".into());
            }
        };
        while let Some((at, e)) = chain.pop() {
            let delta = inflate(&self.pack[e.data..self.pack.len() - 20], e.size)?;
            let o: Object = Rc::new((obj.0, apply_delta(&obj.1, &delta)?));
            self.spend(e.size + o.1.len() as u64)?;
            self.remember(at, &o);
            obj = o;
        }
        Ok(obj)
    }
}

/// Read a loose object file: its type and content.
pub fn read_loose(file: &[u8], max: u64) -> FormatResult<(u8, Vec<u8>)> {
    // The header is "<type> <size>\0": inflate a little first to read it.
    let mut z = Decompress::new(true);
    let mut head = Vec::with_capacity(64);
    z.decompress_vec(file, &mut head, FlushDecompress::None)
        .map_err(|e| format!("inflate: {e}"))?;
    let nul = head
        .iter()
        .position(|&b| b == 0)
        .ok_or("no object header")?;
    let header = std::str::from_utf8(&head[..nul]).map_err(|_| "bad object header")?;
    let (kind, size) = header.split_once(' ').ok_or("bad object header")?;
    let kind = match kind {
        "commit" => COMMIT,
        "tree" => TREE,
        "blob" => BLOB,
        "tag" => TAG,
        _ => return Err("unknown object type".into()),
    };
    let size: u64 = size.parse().map_err(|_| "bad object size")?;
    if size > max {
        return Err("object too large".into());
    }
    let all = inflate(file, nul as u64 + 1 + size)?;
    Ok((kind, all[nul + 1..].to_vec()))
}

pub fn type_name(kind: u8) -> &'static str {
    match kind {
        COMMIT => "commit",
        TREE => "tree",
        BLOB => "blob",
        _ => "tag",
    }
}

/// A loose object file holding this content.
pub fn write_loose(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut raw = format!("{} {}\0", type_name(kind), content.len()).into_bytes();
    raw.extend_from_slice(content);
    deflate(&raw)
}

/// Entries of a tree object: (mode, name, oid).
pub fn tree_entries(tree: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], Oid)> {
    let mut rest = tree;
    std::iter::from_fn(move || {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let nul = sp + rest[sp..].iter().position(|&b| b == 0)?;
        let oid: Oid = rest.get(nul + 1..nul + 21)?.try_into().ok()?;
        let (mode, name) = (&rest[..sp], &rest[sp + 1..nul]);
        rest = &rest[nul + 21..];
        Some((mode, name, oid))
    })
}

fn type_size_header(kind: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut c = (kind << 4) | (size & 15) as u8;
    let mut rest = size >> 4;
    while rest != 0 {
        out.push(c | 0x80);
        c = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(c);
    out
}

fn ofs_encoding(mut off: u64) -> Vec<u8> {
    let mut out = vec![(off & 0x7f) as u8];
    off >>= 7;
    while off != 0 {
        off -= 1;
        out.push(0x80 | (off & 0x7f) as u8);
        off >>= 7;
    }
    out.reverse();
    out
}

/// Copy a pack, giving the objects in `replace` (by position in the index)
/// new content. Every object whose delta chain passes through a replaced
/// one is written whole (its delta no longer fits its base); all others
/// are copied as they are. Entries keep their order, so positions in pack
/// order (reverse indexes, bitmaps) stay valid; offsets change and a new
/// index is returned. The trailer keeps the original checksum, which the
/// index, reverse index and bitmap name.
pub fn rewrite(
    reader: &mut Reader<'_>,
    replace: &HashMap<usize, Vec<u8>>,
) -> FormatResult<(Vec<u8>, Index)> {
    let index = reader.index;
    let pack = reader.pack;
    let n = index.oids.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| index.offsets[i]);
    let pos_of_offset: HashMap<u64, usize> = order.iter().map(|&i| (index.offsets[i], i)).collect();
    // Which entries must be written whole: replaced ones, and those whose
    // base is (transitively).
    let mut whole = vec![false; n];
    for &i in replace.keys() {
        if i < n {
            whole[i] = true;
        }
    }
    let mut bases = vec![None; n];
    for &i in &order {
        let e = reader.entry(index.offsets[i])?;
        bases[i] = match e.base {
            Base::None => None,
            Base::Offset(o) => Some(*pos_of_offset.get(&o).ok_or("delta base is no entry")?),
            Base::Name(oid) => Some(index.find(&oid).ok_or("delta base not in this pack")?),
        };
    }
    // Each chain is followed once (a pass per link would be quadratic in a
    // hostile pack's long chains of name bases listed backwards).
    let mut done = vec![false; n];
    for start in 0..n {
        let mut chain = Vec::new();
        let mut at = start;
        let w = loop {
            if done[at] || whole[at] {
                break whole[at];
            }
            chain.push(at);
            if chain.len() > MAX_DEPTH {
                return Err("delta chain too deep (or a loop)".into());
            }
            match bases[at] {
                Some(b) => at = b,
                None => break false,
            }
        };
        for c in chain {
            whole[c] = w;
            done[c] = true;
        }
    }

    let mut out = Vec::with_capacity(pack.len());
    out.extend_from_slice(&pack[..12]);
    let mut new_offsets = vec![0u64; n];
    let mut crcs = index.crcs.clone();
    let end_of_data = pack.len() - 20;
    for (k, &i) in order.iter().enumerate() {
        let start = index.offsets[i] as usize;
        let end = order
            .get(k + 1)
            .map(|&j| index.offsets[j] as usize)
            .unwrap_or(end_of_data);
        let e = reader.entry(index.offsets[i])?;
        if end < e.data || end > end_of_data {
            return Err("entries overlap".into());
        }
        let at = out.len();
        new_offsets[i] = at as u64;
        if whole[i] {
            let obj;
            let (kind, content): (u8, &[u8]) = match replace.get(&i) {
                Some(c) => {
                    obj = reader.read(index.offsets[i])?;
                    (obj.0, c)
                }
                None => {
                    obj = reader.read(index.offsets[i])?;
                    (obj.0, &obj.1)
                }
            };
            out.extend_from_slice(&type_size_header(kind, content.len() as u64));
            out.extend_from_slice(&deflate(content));
        } else {
            match e.base {
                Base::Offset(_) => {
                    let b = bases[i].ok_or("delta without base")?;
                    let dist = at as u64 - new_offsets[b];
                    out.extend_from_slice(&pack[start..start + e.type_len]);
                    out.extend_from_slice(&ofs_encoding(dist));
                    out.extend_from_slice(&pack[e.data..end]);
                }
                _ => out.extend_from_slice(&pack[start..end]),
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(&out[at..]);
        crcs[i] = crc.sum();
    }
    out.extend_from_slice(&index.pack_sum);
    Ok((
        out,
        Index {
            oids: index.oids.clone(),
            crcs,
            offsets: new_offsets,
            pack_sum: index.pack_sum,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_copy_and_insert() {
        let base = b"hello world";
        // base size 11, result size 8: copy 5 from 0, insert " you".
        let delta = [11, 9, 0x90, 5, 4, b' ', b'y', b'o', b'u'];
        assert_eq!(apply_delta(base, &delta).unwrap(), b"hello you");
        assert!(apply_delta(b"x", &delta).is_err());
        // A copy outside the base is an error, not a panic.
        assert!(apply_delta(base, &[11, 5, 0x91, 200, 5]).is_err());
    }

    #[test]
    fn header_encodings_round_trip() {
        for size in [0u64, 15, 16, 1000, 1 << 20, 123_456_789] {
            let h = type_size_header(BLOB, size);
            let mut pack = h.clone();
            pack.extend_from_slice(&[0; 4]);
            let e = parse_entry(&pack, 0).unwrap();
            assert_eq!((e.kind, e.size, e.type_len), (BLOB, size, h.len()));
        }
        for dist in [1u64, 127, 128, 16511, 16512, 1 << 30] {
            let mut pack = vec![0u8; 0];
            let at = dist as usize + 3;
            pack.resize(at, 0);
            pack.extend_from_slice(&type_size_header(OFS_DELTA, 3));
            pack.extend_from_slice(&ofs_encoding(dist));
            pack.extend_from_slice(&[0; 4]);
            let e = parse_entry(&pack, at).unwrap();
            assert_eq!(e.base, Base::Offset(3));
        }
    }

    #[test]
    fn loose_round_trip_and_bounds() {
        let f = write_loose(BLOB, b"content\n");
        assert_eq!(read_loose(&f, 100).unwrap(), (BLOB, b"content\n".to_vec()));
        assert!(read_loose(&f, 3).is_err());
        assert!(read_loose(b"garbage", 100).is_err());
        // A header that lies about the size.
        let lie = deflate(b"blob 3\0content");
        assert!(read_loose(&lie, 100).is_err());
    }

    fn git(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "gc.auto=0",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git must be installed for this test");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Every object as git itself reads it: (oid, type, content).
    fn all_objects(dir: &std::path::Path) -> Vec<(String, String, Vec<u8>)> {
        let list = git(dir, &["cat-file", "--batch-all-objects", "--batch-check"]);
        String::from_utf8(list)
            .unwrap()
            .lines()
            .map(|l| {
                let mut f = l.split(' ');
                let (oid, kind) = (f.next().unwrap().to_string(), f.next().unwrap().to_string());
                let content = git(dir, &["cat-file", &kind, &oid]);
                (oid, kind, content)
            })
            .collect()
    }

    /// A packed repository with delta chains: one file in three versions
    /// (the middle one with an extra line), plus others.
    fn packed_repo(dir: &std::path::Path) {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q"]);
        let body: String = (0..300)
            .map(|i| format!("line {i}: echo value_{i}\n"))
            .collect();
        std::fs::write(dir.join("app.sh"), &body).unwrap();
        std::fs::write(dir.join("other.txt"), "other\n").unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-qm", "v1"]);
        let v2 = body.replacen("line 150:", "MARKED LINE\nline 150:", 1);
        std::fs::write(dir.join("app.sh"), &v2).unwrap();
        git(dir, &["commit", "-qam", "v2"]);
        std::fs::write(dir.join("app.sh"), format!("{v2}tail\n")).unwrap();
        git(dir, &["commit", "-qam", "v3"]);
        git(dir, &["gc", "-q", "--aggressive"]);
    }

    #[test]
    fn reads_and_rewrites_real_packs() {
        let dir = std::env::temp_dir().join(format!("guard-pack-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        packed_repo(&dir);
        let before = all_objects(&dir);
        let pack_dir = dir.join(".git/objects/pack");
        let stem = std::fs::read_dir(&pack_dir)
            .unwrap()
            .flatten()
            .find_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".idx")
                    .map(String::from)
            })
            .unwrap();
        let idx_path = pack_dir.join(format!("{stem}.idx"));
        let pack_path = pack_dir.join(format!("{stem}.pack"));
        let idx_bytes = std::fs::read(&idx_path).unwrap();
        let pack_bytes = std::fs::read(&pack_path).unwrap();
        let index = Index::parse(&idx_bytes).unwrap();
        // The index written back from what was parsed is the same (but for
        // its own checksum, which guard leaves zero).
        let n = idx_bytes.len();
        assert_eq!(index.write()[..n - 20], idx_bytes[..n - 20]);
        // Finding names in place agrees with the parsed index.
        for (i, oid) in index.oids.iter().enumerate() {
            assert_eq!(Index::position(&idx_bytes, oid), Some(i));
        }
        for absent in [[0u8; 20], [0xff; 20], [0x7f; 20]] {
            assert_eq!(Index::position(&idx_bytes, &absent), None);
        }
        let mut reader = Reader::new(&pack_bytes, &index).unwrap();
        // Every object reads as git reads it.
        for (oid, kind, content) in &before {
            let i = index.find(&parse_hex(oid).unwrap()).unwrap();
            let obj = reader.read(index.offsets[i]).unwrap();
            assert_eq!(type_name(obj.0), kind);
            assert_eq!(&obj.1, content, "{oid}");
        }
        // Replace the version with the marked line: the others still read
        // the same, through git, from the rewritten pack.
        let (marked, ..) = before
            .iter()
            .find(|(_, k, c)| k == "blob" && c.windows(11).any(|w| w == b"MARKED LINE"))
            .unwrap();
        let i = index.find(&parse_hex(marked).unwrap()).unwrap();
        let replace = HashMap::from([(i, b"replaced\n".to_vec())]);
        let (new_pack, new_index) = rewrite(&mut reader, &replace).unwrap();
        assert!(!new_pack.windows(11).any(|w| w == b"MARKED LINE"));
        // git makes its packs read-only: a user (not root) replaces them.
        for (path, bytes) in [(&pack_path, new_pack), (&idx_path, new_index.write())] {
            std::fs::remove_file(path).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let after = all_objects(&dir);
        assert_eq!(after.len(), before.len());
        for ((oid, kind, content), (oid2, kind2, content2)) in before.iter().zip(&after) {
            assert_eq!((oid, kind), (oid2, kind2));
            if oid == marked {
                assert_eq!(content2, b"replaced\n");
            } else {
                assert_eq!(content, content2, "{oid} changed");
            }
        }
        git(&dir, &["log", "-p"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        /// Hostile bytes (a cloned repository's object files) are errors,
        /// never panics or unbounded allocations.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Index::parse(&b);
            let _ = Index::position(&b, &[1; 20]);
            let _ = parse_entry(&b, 0);
            let _ = read_loose(&b, 1 << 20);
            let _ = apply_delta(b"base content", &b);
            let _ = inflate(&b, 100);
            let _ = tree_entries(&b).count();
            let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
            pack.extend_from_slice(&b);
            pack.extend_from_slice(&[0u8; 20]);
            let index = Index { oids: vec![[1; 20]], crcs: vec![0], offsets: vec![12], pack_sum: [0; 20] };
            if let Ok(mut r) = Reader::new(&pack, &index) {
                let _ = r.read(12);
                let _ = rewrite(&mut r, &HashMap::from([(0usize, b"x".to_vec())]));
            }
        }
    }

    #[test]
    fn malformed_indexes_are_errors() {
        assert!(Index::parse(b"").is_err());
        let mut b = IDX_MAGIC.to_vec();
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&[0xff; 1024]);
        assert!(Index::parse(&b).is_err());
    }
}
