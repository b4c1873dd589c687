//! A minimal, bounds-checked reader of the flatbuffer wire format by field number.
//!
//! The verifier reads programs through the readers generated from ExecuTorch's schemas
//! (`schema/`). This one is left for what those cannot give: the type tag of a program value
//! whose union table is missing (see `integrity::tag_without_table`), and, in tests, the byte
//! positions of fields that the tests corrupt. Every read goes through `slice::get` and
//! checked arithmetic, so arbitrary bytes give an error, never a panic.
//!
//! Layout reminders (flatbuffers' documented binary format, little-endian): a table starts
//! with an `i32` offset back to its vtable; the vtable holds its own length, the table's
//! length, then one `u16` offset per field (0 = absent). Offset fields (tables, vectors,
//! strings) hold a `u32` relative to the field's own position; a vector is a `u32` length
//! followed by its elements. A union field occupies two slots: the `u8` type tag, then the
//! offset to the table.

use std::fmt;

/// A structural problem: an offset or length that leads outside the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfBounds {
    /// What was being read.
    pub what: &'static str,
    /// Where in the buffer.
    pub at: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} lies outside the program data",
            self.what, self.at
        )
    }
}

type R<T> = std::result::Result<T, OutOfBounds>;

fn bytes<const N: usize>(buf: &[u8], at: usize, what: &'static str) -> R<[u8; N]> {
    at.checked_add(N)
        .and_then(|end| buf.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(OutOfBounds { what, at })
}

fn read_u16(buf: &[u8], at: usize, what: &'static str) -> R<u16> {
    bytes(buf, at, what).map(u16::from_le_bytes)
}

fn read_u32(buf: &[u8], at: usize, what: &'static str) -> R<u32> {
    bytes(buf, at, what).map(u32::from_le_bytes)
}

/// Follows the `u32` offset stored at `at` (relative to `at`).
fn follow(buf: &[u8], at: usize, what: &'static str) -> R<usize> {
    let rel = read_u32(buf, at, what)?;
    usize::try_from(rel)
        .ok()
        .and_then(|r| at.checked_add(r))
        .filter(|&target| target < buf.len())
        .ok_or(OutOfBounds { what, at })
}

/// A table: its position and its vtable, both checked to lie inside the buffer.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> Table<'a> {
    /// The root table of a finished flatbuffer (its offset is the buffer's first `u32`).
    pub fn root(buf: &'a [u8]) -> R<Self> {
        let pos = follow(buf, 0, "root table offset")?;
        Table::at(buf, pos)
    }

    fn at(buf: &'a [u8], pos: usize) -> R<Self> {
        let soffset = i32::from_le_bytes(bytes(buf, pos, "table")?);
        let vtable = i64::try_from(pos)
            .ok()
            .and_then(|p| p.checked_sub(i64::from(soffset)))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(OutOfBounds {
                what: "vtable",
                at: pos,
            })?;
        // Like flatbuffers' own verifier, only the vtable's extent is checked, not the table
        // length it records (nothing reads that; each field read is bounds-checked itself),
        // so a corrupted table length does not reject what the runtime would accept.
        let vtable_len = usize::from(read_u16(buf, vtable, "vtable")?);
        let vtable_ok = vtable
            .checked_add(vtable_len)
            .is_some_and(|e| e <= buf.len());
        if !vtable_ok {
            return Err(OutOfBounds {
                what: "vtable",
                at: vtable,
            });
        }
        Ok(Table {
            buf,
            pos,
            vtable,
            vtable_len,
        })
    }

    /// Position of field `slot` (0-based, in schema order; a union takes two slots), or
    /// `None` if the field is absent (default value).
    fn field(&self, slot: usize) -> R<Option<usize>> {
        let entry = 4 + 2 * slot;
        if entry + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = read_u16(self.buf, self.vtable + entry, "vtable entry")?;
        if off == 0 {
            return Ok(None);
        }
        Ok(Some(self.pos + usize::from(off)))
    }

    fn scalar<const N: usize>(&self, slot: usize) -> R<Option<[u8; N]>> {
        self.field(slot)?
            .map(|at| bytes(self.buf, at, "scalar field"))
            .transpose()
    }

    /// A `u8`/`ubyte`/`bool` or enum-of-byte field (union type tags included).
    pub fn u8(&self, slot: usize, default: u8) -> R<u8> {
        Ok(self.scalar::<1>(slot)?.map_or(default, |b| b[0]))
    }

    #[cfg(test)]
    /// An `int` field.
    pub fn i32(&self, slot: usize, default: i32) -> R<i32> {
        Ok(self.scalar(slot)?.map_or(default, i32::from_le_bytes))
    }

    #[cfg(test)]
    /// A `uint` field.
    pub fn u32(&self, slot: usize, default: u32) -> R<u32> {
        Ok(self.scalar(slot)?.map_or(default, u32::from_le_bytes))
    }

    #[cfg(test)]
    /// A `ulong`/`uint64` field.
    pub fn u64(&self, slot: usize, default: u64) -> R<u64> {
        Ok(self.scalar(slot)?.map_or(default, u64::from_le_bytes))
    }

    #[cfg(test)]
    /// A sub-table (or the value of a union), if present.
    pub fn table(&self, slot: usize) -> R<Option<Table<'a>>> {
        match self.field(slot)? {
            None => Ok(None),
            Some(at) => Table::at(self.buf, follow(self.buf, at, "table offset")?).map(Some),
        }
    }

    /// A vector of `elem_size`-byte elements, if present.
    pub fn vector(&self, slot: usize, elem_size: usize) -> R<Option<Vector<'a>>> {
        let Some(at) = self.field(slot)? else {
            return Ok(None);
        };
        let start = follow(self.buf, at, "vector offset")?;
        let len = usize::try_from(read_u32(self.buf, start, "vector length")?)
            .map_err(|_| OutOfBounds { what: "vector", at })?;
        let data = start + 4;
        let fits = len
            .checked_mul(elem_size)
            .and_then(|n| data.checked_add(n))
            .is_some_and(|end| end <= self.buf.len());
        if !fits {
            return Err(OutOfBounds {
                what: "vector",
                at: start,
            });
        }
        Ok(Some(Vector {
            buf: self.buf,
            data,
            len,
            elem_size,
        }))
    }

    #[cfg(test)]
    /// A string, if present (bytes that are not UTF-8 are replaced).
    pub fn string(&self, slot: usize) -> R<Option<String>> {
        Ok(self
            .vector(slot, 1)?
            .map(|v| String::from_utf8_lossy(v.bytes()).into_owned()))
    }
}

/// A vector whose elements are known to lie inside the buffer.
#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    buf: &'a [u8],
    data: usize,
    len: usize,
    elem_size: usize,
}

impl<'a> Vector<'a> {
    #[cfg(test)]
    /// A vector with no elements (for an absent optional list).
    pub fn empty() -> Vector<'static> {
        Vector {
            buf: &[],
            data: 0,
            len: 0,
            elem_size: 4,
        }
    }

    #[cfg(test)]
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    fn elem<const N: usize>(&self, i: usize) -> R<[u8; N]> {
        // `i < len` and `len * elem_size` fits (checked at construction), so this cannot wrap.
        if i >= self.len || N > self.elem_size {
            return Err(OutOfBounds {
                what: "vector element",
                at: self.data,
            });
        }
        bytes(self.buf, self.data + i * self.elem_size, "vector element")
    }

    #[cfg(test)]
    /// Element `i` of an `[int]`.
    pub fn i32(&self, i: usize) -> R<i32> {
        self.elem(i).map(i32::from_le_bytes)
    }

    #[cfg(test)]
    /// Element `i` of a `[uint]`.
    pub fn u32(&self, i: usize) -> R<u32> {
        self.elem(i).map(u32::from_le_bytes)
    }

    /// Element `i` of a vector of tables.
    pub fn table(&self, i: usize) -> R<Table<'a>> {
        self.elem::<4>(i)?;
        let at = self.data + i * self.elem_size;
        Table::at(self.buf, follow(self.buf, at, "table offset")?)
    }

    #[cfg(test)]
    /// The raw bytes of a `[ubyte]` (or a string).
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
            .get(self.data..self.data + self.len * self.elem_size)
            .unwrap_or_default()
    }
}

#[cfg(test)]
impl Table<'_> {
    /// Absolute position of field `slot`, for tests that corrupt it.
    pub fn position(&self, slot: usize) -> Option<usize> {
        self.field(slot).ok().flatten()
    }

    /// Absolute position of the vtable entry of field `slot` (0 there removes the field).
    pub fn vtable_entry(&self, slot: usize) -> usize {
        self.vtable + 4 + 2 * slot
    }
}

#[cfg(test)]
impl Vector<'_> {
    /// Absolute position of element `i` (the length precedes element 0 by 4 bytes).
    pub fn position(&self, i: usize) -> usize {
        self.data + i * self.elem_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled buffer: root table with one `int` field (7) and one `[int]` field.
    fn sample() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&12u32.to_le_bytes()); // 0: root offset -> 12
                                                   // 4: vtable: len 8, table len 12, field0 at +4, field1 at +8
        for v in [8u16, 12, 4, 8] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&8i32.to_le_bytes()); // 12: soffset -> vtable at 4
        b.extend_from_slice(&7i32.to_le_bytes()); // 16: field0
        b.extend_from_slice(&4u32.to_le_bytes()); // 20: field1 -> vector at 24
        b.extend_from_slice(&2u32.to_le_bytes()); // 24: len 2
        b.extend_from_slice(&5i32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        b
    }

    #[test]
    fn reads_fields_and_defaults() {
        let buf = sample();
        let t = Table::root(&buf).unwrap();
        assert_eq!(t.i32(0, 0).unwrap(), 7);
        assert_eq!(t.i32(5, 42).unwrap(), 42);
        let v = t.vector(1, 4).unwrap().unwrap();
        assert_eq!((v.len(), v.i32(0).unwrap(), v.i32(1).unwrap()), (2, 5, -1));
        assert!(v.i32(2).is_err());
    }

    #[test]
    fn every_truncation_and_byte_value_is_an_error_not_a_panic() {
        let buf = sample();
        for keep in 0..buf.len() {
            let short = &buf[..keep];
            if let Ok(t) = Table::root(short) {
                let _ = t.i32(0, 0);
                let _ = t.vector(1, 4).map(|v| v.map(|v| v.i32(1)));
            }
        }
        for pos in 0..buf.len() {
            for value in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = buf.clone();
                b[pos] = value;
                if let Ok(t) = Table::root(&b) {
                    let _ = t.table(0);
                    let _ = t.string(1);
                    let _ = t.vector(1, 8).map(|v| v.map(|v| v.table(0)));
                }
            }
        }
    }
}
