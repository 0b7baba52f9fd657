//! Protobuf wire format: a bounds-checked reader and a writer.

use crate::ProtoError;

/// Wire type of varints (int32, int64, bool).
pub(crate) const VARINT: u8 = 0;
/// Wire type of 8-byte fixed values.
pub(crate) const FIXED64: u8 = 1;
/// Wire type of length-delimited values (strings, bytes, messages, packed arrays).
pub(crate) const LEN: u8 = 2;
/// Wire type of 4-byte fixed values.
pub(crate) const FIXED32: u8 = 5;

/// A cursor over one message's bytes. Every read checks the remaining length.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some((&byte, rest)) = self.buf.split_first() else {
                return Err(ProtoError::malformed("truncated varint"));
            };
            self.buf = rest;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && byte > 1 {
                return Err(ProtoError::malformed("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::malformed("varint longer than 10 bytes"))
    }

    /// The next field's number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, u8), ProtoError> {
        let key = self.varint()?;
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(ProtoError::malformed("invalid field number"));
        }
        // Both casts are in range: tag was checked above and the wire type is 3 bits.
        Ok((tag as u32, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::malformed("length beyond the end of the input"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .map_err(|_| ProtoError::malformed("length beyond the end of the input"))?;
        self.take(len)
    }

    /// Skips a value of a field this table does not know.
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), ProtoError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            // Groups (3, 4) are deprecated and no Kubernetes message uses them.
            _ => Err(ProtoError::malformed("unsupported wire type")),
        }
    }
}

/// Appends protobuf encodings to a byte vector.
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self { buf: Vec::new() }
    }

    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub(crate) fn key(&mut self, tag: u32, wire_type: u8) {
        self.varint((u64::from(tag) << 3) | u64::from(wire_type));
    }

    pub(crate) fn len_field(&mut self, tag: u32, bytes: &[u8]) {
        self.key(tag, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn varint_field(&mut self, tag: u32, value: u64) {
        self.key(tag, VARINT);
        self.varint(value);
    }
}
