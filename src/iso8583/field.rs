//! Decoded messages. A [`Message`] borrows the frame it was decoded from:
//! its field table holds, per data element, where in the frame the field's
//! wire data is (length prefix excluded). Fields set afterwards are copied
//! into one buffer the message owns. Logical values (digits of a
//! BCD field, hex of a binary one) are produced on demand by
//! [`super::Spec::text`]; owning every byte is an explicit
//! [`Message::into_owned`].
//!
//! The frame is either a borrowed slice (`Spec::decode`) or a shared
//! [`Bytes`] handle on it (`Spec::decode_shared`): the second gives a
//! `Message<'static>` that keeps its frame alive for the price of a
//! reference count, so a message received on one task can be handed to
//! another without copying its fields.
//!
//! The field table is inline for up to [`INLINE_FIELDS`] fields and its
//! entries are plain offsets, so decoding a typical authorization
//! allocates nothing and dropping the message frees nothing per field.

use std::borrow::Cow;

use bytes::Bytes;

use super::bitmap::Bitmap;
use super::mti::Mti;

/// Fields held without a heap allocation.
pub const INLINE_FIELDS: usize = 20;

/// One data element as it is on the wire: a view of the data, and its
/// length in the field's unit. `Debug` shows sizes only: the data may be
/// a PAN or a cryptogram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    raw: &'a [u8],
    /// Length in the field's unit (nibbles for BCD), as the prefix said.
    units: u16,
}

impl<'a> Field<'a> {
    #[inline]
    pub(crate) fn borrowed(raw: &'a [u8], units: u16) -> Field<'a> {
        Field { raw, units }
    }

    /// A field from wire data as it is, not checked against any dialect
    /// (tests and tools that need malformed messages; everything else
    /// should use [`super::Spec::set_text`]).
    pub fn from_wire(raw: &'a [u8], units: u16) -> Field<'a> {
        Field { raw, units }
    }

    /// The field's wire data, without its length prefix.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Length in the field's unit (characters, nibbles or bytes).
    #[inline]
    pub fn units(&self) -> usize {
        self.units as usize
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

/// Wire data built for one field (see [`super::value::encode_text`]).
#[derive(Clone, PartialEq, Eq)]
pub struct FieldBuf {
    raw: Vec<u8>,
    units: u16,
}

impl FieldBuf {
    pub(crate) fn new(raw: Vec<u8>, units: u16) -> FieldBuf {
        FieldBuf { raw, units }
    }

    pub fn as_field(&self) -> Field<'_> {
        Field::borrowed(&self.raw, self.units)
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn units(&self) -> usize {
        self.units as usize
    }
}

impl std::fmt::Debug for FieldBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_field().fmt(f)
    }
}

/// Marks a [`Slot`] whose data is in the message's own buffer.
const OWNED: u32 = 1 << 31;

/// One field of the table: its number, its length in its unit, and where
/// its data is: `len` bytes at `start` of the decoded frame, or (`start`
/// with [`OWNED`] set) of the message's own buffer. Offsets rather than
/// slices keep a slot at 12 bytes, so a decoded message is small to move.
/// Frame offsets fit: the decoder reads at most a 64-byte header, the
/// MTI, three bitmaps and 192 fields of at most 10,003 bytes each.
// No Debug: a slot's data may be a PAN or a cryptogram.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    start: u32,
    len: u32,
    n: u16,
    units: u16,
}

impl Slot {
    const EMPTY: Slot = Slot {
        start: 0,
        len: 0,
        n: 0,
        units: 0,
    };

    fn len(&self) -> usize {
        self.len as usize
    }

    fn owned(&self) -> Option<usize> {
        (self.start & OWNED != 0).then_some((self.start & !OWNED) as usize)
    }
}

/// The field table, sorted by field number: inline until it outgrows
/// [`INLINE_FIELDS`], then entirely in `spill`.
#[derive(Clone)]
struct Slots {
    len: usize,
    inline: [Slot; INLINE_FIELDS],
    spill: Vec<Slot>,
}

impl Slots {
    fn with_capacity(n: usize) -> Slots {
        Slots {
            len: 0,
            inline: [Slot::EMPTY; INLINE_FIELDS],
            spill: if n > INLINE_FIELDS {
                Vec::with_capacity(n)
            } else {
                Vec::new()
            },
        }
    }

    #[inline]
    fn as_slice(&self) -> &[Slot] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Slot] {
        if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        }
    }

    /// Moves the inline entries to the heap (once, when full).
    #[cold]
    fn spill(&mut self) {
        if self.spill.is_empty() {
            self.spill.reserve(self.len + 1);
            self.spill.extend_from_slice(&self.inline[..self.len]);
        }
    }

    #[inline]
    fn push(&mut self, s: Slot) {
        if self.len < INLINE_FIELDS && self.spill.is_empty() {
            self.inline[self.len] = s;
        } else {
            self.spill();
            self.spill.push(s);
        }
        self.len += 1;
    }

    fn insert(&mut self, i: usize, s: Slot) {
        if self.len < INLINE_FIELDS && self.spill.is_empty() {
            self.inline.copy_within(i..self.len, i + 1);
            self.inline[i] = s;
        } else {
            self.spill();
            self.spill.insert(i, s);
        }
        self.len += 1;
    }

    fn remove(&mut self, i: usize) -> Slot {
        let s = if self.spill.is_empty() {
            let s = self.inline[i];
            self.inline.copy_within(i + 1..self.len, i);
            s
        } else {
            self.spill.remove(i)
        };
        self.len -= 1;
        s
    }

    fn find(&self, n: u16) -> Result<usize, usize> {
        self.as_slice().binary_search_by_key(&n, |s| s.n)
    }
}

/// The decoder's way of filling a message: slots written straight into the
/// inline table, the count and data length kept in locals and stored once
/// when it is dropped (past [`INLINE_FIELDS`] fields the table spills to
/// the heap).
pub(crate) struct DecodedFields<'m, 'a> {
    msg: &'m mut Message<'a>,
    len: usize,
    data_len: usize,
}

impl<'a> DecodedFields<'_, 'a> {
    /// Appends field `n`, `len` bytes at offset `start` of the frame,
    /// known to come after every present one. Its bytes are counted by
    /// [`DecodedFields::add_data`] (once for a run of fields).
    #[inline(always)]
    pub(crate) fn push(&mut self, n: u16, start: usize, len: usize, units: u16) {
        // Offsets and lengths within a decoded frame fit (see `Slot`).
        let slot = || Slot {
            start: start as u32,
            len: len as u32,
            n,
            units,
        };
        // The table was empty when decoding began, so below INLINE_FIELDS
        // entries it has not spilled.
        match self.msg.slots.inline.get_mut(self.len) {
            Some(s) => {
                // Written in place: a slot built on the stack and copied
                // over was read back wider than it was written, which stalls
                // store forwarding.
                *s = slot();
                self.len += 1;
            }
            None => self.push_slow(slot()),
        }
    }

    /// Fields pushed so far.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Takes back the fields pushed after the first `len` (their bytes
    /// were not counted yet).
    #[cold]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        let slots = &mut self.msg.slots;
        if !slots.spill.is_empty() {
            // Back inline when it fits: `push` relies on a table below
            // INLINE_FIELDS entries not having spilled.
            slots.spill.truncate(self.len);
            if self.len <= INLINE_FIELDS {
                slots.inline[..self.len].copy_from_slice(&slots.spill);
                slots.spill.clear();
            }
            slots.len = self.len;
        }
    }

    /// `bytes` more bytes of field data pushed.
    #[inline(always)]
    pub(crate) fn add_data(&mut self, bytes: usize) {
        self.data_len += bytes;
    }

    /// Past the inline table: the general push (the table spills).
    #[cold]
    fn push_slow(&mut self, slot: Slot) {
        self.sync();
        self.msg.slots.push(slot);
        self.len = self.msg.slots.len;
    }

    fn sync(&mut self) {
        self.msg.slots.len = self.len;
        self.msg.data_len += std::mem::take(&mut self.data_len);
    }
}

/// The count and data length are stored when the decoder is done (or
/// fails: the message is then whole up to the last field pushed).
impl Drop for DecodedFields<'_, '_> {
    fn drop(&mut self) {
        self.sync();
    }
}

/// The frame a decoded message's slots point into.
#[derive(Clone)]
pub(crate) enum FrameData<'a> {
    Borrowed(&'a [u8]),
    /// A handle on the receive buffer: the message owns its frame without
    /// a copy.
    Shared(Bytes),
}

impl FrameData<'_> {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            FrameData::Borrowed(b) => b,
            FrameData::Shared(b) => b,
        }
    }
}

/// An ISO 8583 message: header, MTI and data elements in field order.
///
/// `Debug` never shows field data (it may hold card data): use
/// [`super::Spec::display`] for a masked view.
// Aligned to 32 bytes: a decoded message is returned by value, and copies
// of it then load what was just stored in 32-byte pieces at the same
// offsets; at 8-byte alignment those loads straddled two stores and
// stalled store forwarding (12 ns of a 187 ns cb2a decode).
#[derive(Clone)]
#[repr(align(32))]
pub struct Message<'a> {
    /// Data of fields set after decoding (and of every field of an owned
    /// message).
    owned: Vec<u8>,
    /// Bytes of `owned` no field points to any more.
    garbage: usize,
    header: Cow<'a, [u8]>,
    mti: Mti,
    slots: Slots,
    /// Data-element bits of the fields present (bits 1 and 65 excluded),
    /// kept in step with `slots` so encoding never recomputes it.
    present: Bitmap,
    /// Sum of the fields' wire data lengths, for one exact `reserve`.
    data_len: usize,
    /// The frame the message was decoded from (empty for a built one).
    // Declared last, so dropped last: releasing a shared frame is a call
    // that may unwind, and with fields left to drop after it a message's
    // drop needed a cleanup path, which made it too large to inline where
    // messages are decoded and dropped in a loop: the caller then copied
    // each message once more to drop it through a pointer (cb2a decode in
    // `benches/codec.rs` 163-166 ns, 140-143 ns declared last).
    frame: FrameData<'a>,
}

impl<'a> Message<'a> {
    /// An empty message with no header.
    pub fn new(mti: Mti) -> Message<'static> {
        Message {
            owned: Vec::new(),
            garbage: 0,
            header: Cow::Borrowed(&[]),
            frame: FrameData::Borrowed(&[]),
            mti,
            slots: Slots::with_capacity(0),
            present: Bitmap::default(),
            data_len: 0,
        }
    }

    /// An empty message with room for `bytes` bytes of field data set
    /// with [`super::Spec::set_text`] and friends before it reallocates.
    pub fn with_data_capacity(mti: Mti, bytes: usize) -> Message<'static> {
        let mut m = Message::new(mti);
        m.owned.reserve(bytes);
        m
    }

    /// An empty message for the decoder to fill.
    #[inline(always)]
    pub(crate) fn empty() -> Message<'a> {
        Message {
            owned: Vec::new(),
            garbage: 0,
            header: Cow::Borrowed(&[]),
            frame: FrameData::Borrowed(&[]),
            mti: Mti::AUTHORIZATION_REQUEST,
            slots: Slots::with_capacity(0),
            present: Bitmap::default(),
            data_len: 0,
        }
    }

    /// Starts decoding `frame` into an empty message: its header, MTI and
    /// bitmap (structural bits already removed), `n` fields to come
    /// through [`Message::decoded_fields`].
    #[inline(always)]
    pub(crate) fn begin_decoding(
        &mut self,
        frame: FrameData<'a>,
        header: Cow<'a, [u8]>,
        mti: Mti,
        n: usize,
        present: Bitmap,
    ) {
        self.frame = frame;
        self.header = header;
        self.mti = mti;
        self.present = present;
        if n > INLINE_FIELDS {
            self.slots.spill.reserve(n);
        }
    }

    /// Fills an empty message from the decoder (see [`DecodedFields`]).
    #[inline(always)]
    pub(crate) fn decoded_fields(&mut self) -> DecodedFields<'_, 'a> {
        debug_assert!(self.slots.len == 0 && self.slots.spill.is_empty());
        DecodedFields {
            len: self.slots.len,
            msg: self,
            data_len: 0,
        }
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

    /// The whole frame the message was decoded from (header included;
    /// empty for a message built field by field).
    pub fn frame(&self) -> &[u8] {
        self.frame.as_slice()
    }

    /// The frame as a shared handle, when the message was decoded with
    /// `Spec::decode_shared`.
    pub fn shared_frame(&self) -> Option<&Bytes> {
        match &self.frame {
            FrameData::Shared(b) => Some(b),
            FrameData::Borrowed(_) => None,
        }
    }

    #[inline]
    fn view(&self, s: &Slot) -> Field<'_> {
        let (base, start) = match s.owned() {
            Some(start) => (&self.owned[..], start),
            None => (self.frame.as_slice(), s.start as usize),
        };
        // Slots only ever point inside their buffer.
        let raw = base.get(start..start + s.len()).unwrap_or_default();
        Field::borrowed(raw, s.units)
    }

    /// Data element `n`, if present.
    #[inline]
    pub fn field(&self, n: u16) -> Option<Field<'_>> {
        let i = self.slots.find(n).ok()?;
        Some(self.view(&self.slots.as_slice()[i]))
    }

    pub fn has(&self, n: u16) -> bool {
        self.slots.find(n).is_ok()
    }

    /// Puts a field's wire data in place (replacing any previous value),
    /// copying it into the message. Prefer [`super::Spec::set_text`],
    /// which validates against the dialect.
    pub fn insert(&mut self, n: u16, f: Field<'_>) {
        let units = f.units;
        let _ = self.insert_with(n, |out| {
            out.extend_from_slice(f.raw);
            Ok::<u16, std::convert::Infallible>(units)
        });
    }

    /// Sets field `n` to what `write` appends to the message's buffer
    /// (returning the field's length in units); if `write` fails, the
    /// message is unchanged.
    pub(crate) fn insert_with<E>(
        &mut self,
        n: u16,
        write: impl FnOnce(&mut Vec<u8>) -> Result<u16, E>,
    ) -> Result<(), E> {
        let start = self.owned.len();
        let units = match write(&mut self.owned) {
            Ok(units) => units,
            Err(e) => {
                self.owned.truncate(start);
                return Err(e);
            }
        };
        let len = self.owned.len() - start;
        let slot = Slot {
            start: start as u32 | OWNED,
            len: len as u32,
            n,
            units,
        };
        self.data_len += len;
        match self.slots.find(n) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.slots.as_mut_slice()[i], slot);
                self.forget(old);
            }
            Err(i) => {
                self.present.set(n);
                self.slots.insert(i, slot);
            }
        }
        Ok(())
    }

    /// Accounts for a slot no longer in the table: its bytes in the owned
    /// buffer are wiped (they may be card data), and the buffer compacted
    /// when most of it is stale.
    fn forget(&mut self, old: Slot) {
        self.data_len -= old.len();
        if let Some(start) = old.owned() {
            let len = old.len();
            self.owned[start..start + len].fill(0);
            self.garbage += len;
            if self.garbage > 256 && self.garbage * 2 > self.owned.len() {
                self.compact();
            }
        }
    }

    /// Rewrites the owned buffer with only the live fields' data.
    fn compact(&mut self) {
        let mut owned = Vec::with_capacity(self.owned.len() - self.garbage);
        let old = std::mem::take(&mut self.owned);
        for s in self.slots.as_mut_slice() {
            if let Some(from) = s.owned() {
                s.start = owned.len() as u32 | OWNED;
                owned.extend_from_slice(&old[from..from + s.len()]);
            }
        }
        self.owned = owned;
        self.garbage = 0;
    }

    /// Removes field `n`; whether it was present.
    pub fn remove(&mut self, n: u16) -> bool {
        match self.slots.find(n) {
            Ok(i) => {
                let old = self.slots.remove(i);
                self.present.clear(n);
                self.forget(old);
                true
            }
            Err(_) => false,
        }
    }

    /// Present fields in ascending order.
    pub fn fields(&self) -> impl Iterator<Item = (u16, Field<'_>)> + '_ {
        self.slots.as_slice().iter().map(|s| (s.n, self.view(s)))
    }

    pub fn len(&self) -> usize {
        self.slots.len
    }

    pub fn is_empty(&self) -> bool {
        self.slots.len == 0
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

    /// Whether field `n`'s data is a slice of the decoded frame (zero-copy).
    pub fn borrows_frame(&self, n: u16) -> bool {
        self.slots
            .find(n)
            .is_ok_and(|i| self.slots.as_slice()[i].owned().is_none())
    }

    /// Gives a message decoded from `frame`'s bytes into an empty frame
    /// (see `decode::decode_shared`) the frame its slots point into.
    pub(crate) fn attach_frame(&mut self, frame: Bytes) {
        self.frame = FrameData::Shared(frame);
    }

    /// Copies all borrowed data so the message outlives its frame.
    pub fn into_owned(self) -> Message<'static> {
        let mut owned = Vec::with_capacity(self.data_len);
        let mut slots = Slots::with_capacity(self.len());
        for s in self.slots.as_slice() {
            let start = owned.len() as u32;
            owned.extend_from_slice(self.view(s).raw());
            slots.push(Slot {
                start: start | OWNED,
                len: owned.len() as u32 - start,
                n: s.n,
                units: s.units,
            });
        }
        Message {
            owned,
            garbage: 0,
            header: Cow::Owned(self.header.into_owned()),
            frame: FrameData::Borrowed(&[]),
            mti: self.mti,
            slots,
            present: self.present,
            data_len: self.data_len,
        }
    }
}

/// Equal when the header, MTI and every field's data and length are.
impl PartialEq for Message<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.mti == other.mti
            && self.header == other.header
            && self.present == other.present
            && self.len() == other.len()
            && self.fields().eq(other.fields())
    }
}

impl Eq for Message<'_> {}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let numbers: Vec<u16> = self.fields().map(|(n, _)| n).collect();
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
        m.insert(11, Field::from_wire(b"000001", 6));
        m.insert(3, Field::from_wire(b"000000", 6));
        m.insert(70, Field::from_wire(b"001", 3));
        m.insert(11, Field::from_wire(b"000002", 6));
        let order: Vec<u16> = m.fields().map(|(n, _)| n).collect();
        assert_eq!(order, [3, 11, 70]);
        assert_eq!(m.field(11).unwrap().raw(), b"000002");
        assert_eq!(m.data_len(), 15);
        let bm = m.bitmap(false);
        assert!(bm.get(1) && bm.get(3) && bm.get(70) && !bm.get(65));
        assert!(m.remove(3));
        assert!(!m.remove(3));
        assert!(!m.has(3));
        assert_eq!(m.data_len(), 9);
        // Debug shows field numbers and sizes, never data.
        let dbg = format!("{m:?}");
        assert!(dbg.contains("[11, 70]") && !dbg.contains("000002"), "{dbg}");
        let f = Field::from_wire(b"4895370012003478", 16);
        let dbg = format!("{f:?}");
        assert!(
            !dbg.contains("48953700") && !dbg.contains("52, 56"),
            "{dbg}"
        );
    }

    #[test]
    fn table_spills_past_the_inline_fields_and_back_again() {
        let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
        // Descending, so every insert shifts the table.
        for n in (2..=120u16).rev() {
            m.insert(n, Field::from_wire(&n.to_be_bytes(), 2));
        }
        assert_eq!(m.len(), 119);
        for (i, (n, f)) in m.fields().enumerate() {
            assert_eq!(n, i as u16 + 2);
            assert_eq!(f.raw(), n.to_be_bytes());
        }
        for n in 2..=110u16 {
            assert!(m.remove(n));
        }
        let left: Vec<u16> = m.fields().map(|(n, _)| n).collect();
        assert_eq!(left, (111..=120).collect::<Vec<_>>());
        assert_eq!(m.data_len(), 20);
    }

    #[test]
    fn replacing_fields_keeps_the_buffer_bounded() {
        let mut m = Message::new(Mti::AUTHORIZATION_REQUEST);
        m.insert(2, Field::from_wire(b"12345678", 8));
        for i in 0..10_000u32 {
            let v = format!("{i:08}");
            m.insert(48, Field::from_wire(v.as_bytes(), 8));
        }
        assert_eq!(m.field(48).unwrap().raw(), b"00009999");
        assert_eq!(m.field(2).unwrap().raw(), b"12345678");
        assert!(m.owned.len() < 1_024, "{}", m.owned.len());
        // Replaced values are wiped, not left behind in the buffer.
        assert!(!m.owned.windows(8).any(|w| w == b"00009998"));
    }

    /// The decoder takes back a failed run of fields, spilled or not.
    #[test]
    fn decoded_fields_truncate_across_the_inline_limit() {
        let frame = [7u8; 64];
        for (pushed, kept) in [(5, 3), (25, 22), (25, 18), (21, 20), (30, 0)] {
            let mut m = Message::empty();
            m.begin_decoding(
                FrameData::Borrowed(&frame),
                Cow::Borrowed(&[]),
                Mti::AUTHORIZATION_REQUEST,
                pushed,
                Bitmap::default(),
            );
            {
                let mut out = m.decoded_fields();
                for i in 0..pushed {
                    out.push(i as u16 + 2, i, 1, 1);
                }
                out.truncate(kept);
                assert_eq!(out.len(), kept);
                // Then more fields, as the decoder does after a failed run.
                for i in kept..kept + 4 {
                    out.push(i as u16 + 2, i, 2, 2);
                }
            }
            let got: Vec<(u16, usize)> = m.fields().map(|(n, f)| (n, f.raw().len())).collect();
            let want: Vec<(u16, usize)> = (0..kept + 4)
                .map(|i| (i as u16 + 2, if i < kept { 1 } else { 2 }))
                .collect();
            assert_eq!(got, want, "{pushed} pushed, {kept} kept");
        }
    }

    #[test]
    fn owned_copy_equals_the_borrowed_message() {
        let frame = b"hdr0123456789";
        let mut present = Bitmap::default();
        present.set(3);
        present.set(11);
        let mut m = Message::empty();
        m.begin_decoding(
            FrameData::Borrowed(frame),
            Cow::Borrowed(&frame[..3]),
            Mti::AUTHORIZATION_REQUEST,
            2,
            present,
        );
        {
            let mut out = m.decoded_fields();
            out.push(3, 3, 6, 6);
            out.push(11, 9, 4, 4);
            out.add_data(10);
        }
        assert_eq!((m.len(), m.data_len()), (2, 10));
        assert!(m.borrows_frame(3));
        m.insert(4, Field::from_wire(b"000000001000", 12));
        assert!(!m.borrows_frame(4));
        let owned = m.clone().into_owned();
        assert_eq!(owned, m);
        assert!(!owned.borrows_frame(3));
        assert_eq!(owned.field(11).unwrap().raw(), b"6789");
        assert_eq!(owned.header(), b"hdr");
    }
}
