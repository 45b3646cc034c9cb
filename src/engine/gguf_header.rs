//! Checks a GGUF header before candle reads it. candle's reader allocates
//! from the counts in the header (tensor count, key count, string and array
//! lengths); a corrupt or hostile file could ask for terabytes. Here every
//! count is checked against the bytes the file still holds, while nothing
//! is allocated.

use std::io::{BufReader, Read, Seek, SeekFrom};

/// What is wrong with a header, said in terms of the file.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("not a GGUF file (magic bytes {0:02x?})")]
    Magic([u8; 4]),
    #[error("GGUF version {0} is not supported (1, 2 or 3)")]
    Version(u32),
    #[error("{what} = {count} cannot fit in the {left} bytes left in the file")]
    TooLarge { what: &'static str, count: u64, left: u64 },
    #[error("metadata value type {0} is unknown")]
    ValueType(u32),
    #[error("arrays nested deeper than {0} levels")]
    Nesting(usize),
    #[error("tensor {index} has {dims} dimensions (at most 4)")]
    Dims { index: u64, dims: u32 },
    #[error("tensor {index} has dimensions whose product overflows")]
    Overflow { index: u64 },
    #[error("general.alignment = {0} must be a power of two")]
    Alignment(u64),
    #[error("the file ends inside its header")]
    Truncated,
    #[error("reading the header: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, HeaderError>;

const MAX_NESTING: usize = 4;

struct Cursor<R> {
    inner: BufReader<R>,
    left: u64,
    /// Version 1 stores counts and lengths as u32.
    v1: bool,
}

impl<R: Read + Seek> Cursor<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.left < N as u64 {
            return Err(HeaderError::Truncated);
        }
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).map_err(|_| HeaderError::Truncated)?;
        self.left -= N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// A count or length: u32 in version 1, u64 after.
    fn count(&mut self) -> Result<u64> {
        if self.v1 {
            Ok(u64::from(self.u32()?))
        } else {
            self.u64()
        }
    }

    /// Skips `n` bytes that must lie inside the file.
    fn skip(&mut self, what: &'static str, n: u64) -> Result<()> {
        if n > self.left {
            return Err(HeaderError::TooLarge { what, count: n, left: self.left });
        }
        let off = i64::try_from(n).map_err(|_| HeaderError::TooLarge { what, count: n, left: self.left })?;
        self.inner.seek_relative(off)?;
        self.left -= n;
        Ok(())
    }

    /// Checks that `count` items of at least `min_size` bytes each fit.
    fn fits(&self, what: &'static str, count: u64, min_size: u64) -> Result<()> {
        match count.checked_mul(min_size) {
            Some(b) if b <= self.left => Ok(()),
            _ => Err(HeaderError::TooLarge { what, count, left: self.left }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<()> {
        let len = self.count()?;
        self.skip(what, len)
    }

    /// A metadata key: read when short (to spot the few keys checked here), else skipped.
    fn key(&mut self) -> Result<Option<Vec<u8>>> {
        let len = self.count()?;
        if len > 64 {
            self.skip("key length", len)?;
            return Ok(None);
        }
        let mut b = vec![0u8; len as usize];
        if self.left < len {
            return Err(HeaderError::TooLarge { what: "key length", count: len, left: self.left });
        }
        self.inner.read_exact(&mut b).map_err(|_| HeaderError::Truncated)?;
        self.left -= len;
        Ok(Some(b))
    }

    /// An integer metadata value of type `ty`, if it is one.
    fn integer(&mut self, ty: u32) -> Result<Option<u64>> {
        Ok(Some(match ty {
            0 | 1 => u64::from(self.bytes::<1>()?[0]),
            2 | 3 => u64::from(u16::from_le_bytes(self.bytes()?)),
            4 | 5 => u64::from(self.u32()?),
            10 | 11 => self.u64()?,
            _ => return Ok(None),
        }))
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<()> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => return self.string("string length"),
            9 => return self.array(depth + 1),
            other => return Err(HeaderError::ValueType(other)),
        };
        self.skip("metadata value", fixed)
    }

    fn array(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_NESTING {
            return Err(HeaderError::Nesting(MAX_NESTING));
        }
        let ty = self.u32()?;
        let n = self.count()?;
        // Every element takes at least one byte (a string at least its length field).
        let min = match ty {
            8 | 9 => 4,
            _ => 1,
        };
        self.fits("array length", n, min)?;
        for _ in 0..n {
            self.value(ty, depth)?;
        }
        Ok(())
    }
}

/// Reads the header of `file` without allocating from its counts; on
/// success the file is rewound for the real reader.
pub fn check<R: Read + Seek>(file: &mut R) -> Result<()> {
    let len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let mut c = Cursor { inner: BufReader::new(&mut *file), left: len, v1: false };
    let magic = c.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err(HeaderError::Magic(magic));
    }
    let version = c.u32()?;
    if !(1..=3).contains(&version) {
        return Err(HeaderError::Version(version));
    }
    c.v1 = version == 1;
    let tensors = c.count()?;
    let kvs = c.count()?;
    // A tensor info takes at least 4 + 4 + 4 + 8 bytes; a key/value at least 4 + 4 + 1.
    c.fits("tensor count", tensors, 20)?;
    c.fits("metadata key count", kvs, 9)?;
    for _ in 0..kvs {
        let key = c.key()?;
        let ty = c.u32()?;
        if key.as_deref() == Some(b"general.alignment") {
            match c.integer(ty)? {
                Some(a) if a.is_power_of_two() => {}
                Some(a) => return Err(HeaderError::Alignment(a)),
                None => c.value(ty, 0)?,
            }
        } else {
            c.value(ty, 0)?;
        }
    }
    for index in 0..tensors {
        c.string("tensor name length")?;
        let dims = c.u32()?;
        if dims > 4 {
            return Err(HeaderError::Dims { index, dims });
        }
        let mut elems: u64 = 1;
        for _ in 0..dims {
            let d = c.count()?;
            elems = elems.checked_mul(d).ok_or(HeaderError::Overflow { index })?;
        }
        // usize arithmetic on the element count must not overflow later either;
        // whether the data fits in the file is checked once offsets are known.
        if usize::try_from(elems).is_err() {
            return Err(HeaderError::Overflow { index });
        }
        c.u32()?; // dtype
        c.u64()?; // offset
    }
    drop(c);
    file.seek(SeekFrom::Start(0))?;
    Ok(())
}
