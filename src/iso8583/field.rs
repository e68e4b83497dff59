//! Decoded messages. A [`Message`] borrows the frame it was decoded from:
//! each [`Field`] is a slice of the frame holding the field's wire data
//! (length prefix excluded). Logical values (digits of a BCD field, hex of a
//! binary one) are produced on demand by [`super::Spec::text`]; owning the
//! data is an explicit [`Message::into_owned`].

use std::borrow::Cow;

use super::bitmap::Bitmap;
use super::mti::Mti;

/// One data element as it is on the wire. `Debug` shows sizes only: the
/// data may be a PAN or a cryptogram.
#[derive(Clone, PartialEq, Eq)]
pub struct Field<'a> {
    raw: Cow<'a, [u8]>,
    /// Length in the field's unit (nibbles for BCD), as the prefix said.
    units: u16,
}

impl<'a> Field<'a> {
    pub(crate) fn borrowed(raw: &'a [u8], units: u16) -> Field<'a> {
        Field {
            raw: Cow::Borrowed(raw),
            units,
        }
    }

    /// A field from wire data as it is, not checked against any dialect
    /// (tests and tools that need malformed messages; everything else
    /// should use [`super::Spec::set_text`]).
    pub fn from_wire(raw: Vec<u8>, units: u16) -> Field<'static> {
        Field::owned(raw, units)
    }

    pub(crate) fn owned(raw: Vec<u8>, units: u16) -> Field<'static> {
        Field {
            raw: Cow::Owned(raw),
            units,
        }
    }

    /// The field's wire data, without its length prefix.
    #[inline]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Length in the field's unit (characters, nibbles or bytes).
    #[inline]
    pub fn units(&self) -> usize {
        self.units as usize
    }

    /// Whether the data borrows the decoded frame.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.raw, Cow::Borrowed(_))
    }

    pub fn into_owned(self) -> Field<'static> {
        Field {
            raw: Cow::Owned(self.raw.into_owned()),
            units: self.units,
        }
    }
}

impl std::fmt::Debug for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Field")
            .field("units", &self.units)
            .field("bytes", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// An ISO 8583 message: header, MTI and data elements in field order.
///
/// `Debug` never shows field data (it may hold card data): use
/// [`super::Spec::display`] for a masked view.
#[derive(Clone, PartialEq, Eq)]
pub struct Message<'a> {
    header: Cow<'a, [u8]>,
    mti: Mti,
    /// Sorted by field number, no duplicates.
    fields: Vec<(u16, Field<'a>)>,
    /// Data-element bits of the fields present (bits 1 and 65 excluded),
    /// kept in step with `fields` so encoding never recomputes it.
    present: Bitmap,
    /// Sum of the fields' wire data lengths, for one exact `reserve`.
    data_len: usize,
}

impl<'a> Message<'a> {
    /// An empty message with no header.
    pub fn new(mti: Mti) -> Message<'static> {
        Message {
            header: Cow::Borrowed(&[]),
            mti,
            fields: Vec::new(),
            present: Bitmap::default(),
            data_len: 0,
        }
    }

    pub(crate) fn with_capacity(header: &'a [u8], mti: Mti, n: usize) -> Message<'a> {
        Message {
            header: Cow::Borrowed(header),
            mti,
            fields: Vec::with_capacity(n),
            present: Bitmap::default(),
            data_len: 0,
        }
    }

    /// Appends a field known to come after every present one, leaving the
    /// presence bitmap to [`Message::set_present`] (the decoder has it).
    #[inline]
    pub(crate) fn push_decoded(&mut self, n: u16, f: Field<'a>) {
        self.data_len += f.raw.len();
        self.fields.push((n, f));
    }

    /// The decoder's bitmap, structural bits (1, and 65 with a tertiary
    /// bitmap) already removed.
    pub(crate) fn set_present(&mut self, present: Bitmap) {
        self.present = present;
    }

    /// Appends a field known to come after every present one.
    #[inline]
    pub(crate) fn push_in_order(&mut self, n: u16, f: Field<'a>) {
        debug_assert!(self.fields.last().is_none_or(|(last, _)| *last < n));
        self.present.set(n);
        self.data_len += f.raw.len();
        self.fields.push((n, f));
    }

    pub fn mti(&self) -> Mti {
        self.mti
    }

    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// The fixed header bytes (empty when the dialect has none).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    pub fn set_header(&mut self, header: Vec<u8>) {
        self.header = Cow::Owned(header);
    }

    /// Data element `n`, if present.
    #[inline]
    pub fn field(&self, n: u16) -> Option<&Field<'a>> {
        self.fields
            .binary_search_by_key(&n, |(k, _)| *k)
            .ok()
            .map(|i| &self.fields[i].1)
    }

    pub fn has(&self, n: u16) -> bool {
        self.field(n).is_some()
    }

    /// Puts a field's wire data in place (replacing any previous value).
    /// Prefer [`super::Spec::set_text`], which validates against the dialect.
    pub fn insert(&mut self, n: u16, f: Field<'a>) {
        self.data_len += f.raw.len();
        match self.fields.binary_search_by_key(&n, |(k, _)| *k) {
            Ok(i) => {
                self.data_len -= self.fields[i].1.raw.len();
                self.fields[i].1 = f;
            }
            Err(i) => {
                self.present.set(n);
                self.fields.insert(i, (n, f));
            }
        }
    }

    pub fn remove(&mut self, n: u16) -> Option<Field<'a>> {
        match self.fields.binary_search_by_key(&n, |(k, _)| *k) {
            Ok(i) => {
                let (_, f) = self.fields.remove(i);
                self.present.clear(n);
                self.data_len -= f.raw.len();
                Some(f)
            }
            Err(_) => None,
        }
    }

    /// Present fields in ascending order.
    pub fn fields(&self) -> impl Iterator<Item = (u16, &Field<'a>)> + '_ {
        self.fields.iter().map(|(n, f)| (*n, f))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The bitmap this message encodes to (bits 1 and 65 included as needed).
    pub fn bitmap(&self, tertiary: bool) -> Bitmap {
        let mut b = self.present;
        if b.word(2) != 0 && tertiary {
            b.set(65);
        }
        if b.word(1) != 0 {
            b.set(1);
        }
        b
    }

    /// Total length of the fields' wire data (prefixes excluded).
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// Copies all borrowed data so the message outlives its frame.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            header: Cow::Owned(self.header.into_owned()),
            mti: self.mti,
            fields: self
                .fields
                .into_iter()
                .map(|(n, f)| (n, f.into_owned()))
                .collect(),
            present: self.present,
            data_len: self.data_len,
        }
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let numbers: Vec<u16> = self.fields.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Message")
            .field("mti", &self.mti)
            .field("fields", &numbers)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_order_and_replaces() {
        let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
        m.insert(11, Field::owned(b"000001".to_vec(), 6));
        m.insert(3, Field::owned(b"000000".to_vec(), 6));
        m.insert(70, Field::owned(b"001".to_vec(), 3));
        m.insert(11, Field::owned(b"000002".to_vec(), 6));
        let order: Vec<u16> = m.fields().map(|(n, _)| n).collect();
        assert_eq!(order, [3, 11, 70]);
        assert_eq!(m.field(11).unwrap().raw(), b"000002");
        let bm = m.bitmap(false);
        assert!(bm.get(1) && bm.get(3) && bm.get(70) && !bm.get(65));
        assert_eq!(m.remove(3).unwrap().raw(), b"000000");
        assert!(!m.has(3));
        // Debug shows field numbers and sizes, never data.
        let dbg = format!("{m:?}");
        assert!(dbg.contains("[11, 70]") && !dbg.contains("000002"), "{dbg}");
        let f = Field::owned(b"4895370012003478".to_vec(), 16);
        let dbg = format!("{f:?}");
        assert!(
            !dbg.contains("48953700") && !dbg.contains("52, 56"),
            "{dbg}"
        );
    }
}
