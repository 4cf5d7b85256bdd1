//! The journal: one collector's events of one grouping, in the order it observed them,
//! encoded as a few bytes each (deltas and LEB128 varints), written out to an unlinked
//! temporary file whenever it holds a few MiB (see `spill`) and decoded again, a segment at
//! a time, for the count and the replay. Also what it encodes: the [`Event`] and the
//! source's [`Key`]. It decides nothing about rules: the engine counts and replays what
//! it reads back.

use std::sync::Arc;

use ipnet::IpNet;

use super::spill::{SpillTo, Spilled};

/// One matching line, as little as the replay needs: its time in seconds, its ordinal, the
/// rules it matched and the virtual host it was for (its id, or `NO_VHOST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Event {
    pub(super) time: i64,
    pub(super) order: u64,
    pub(super) rules: u64,
    pub(super) site: u32,
}

impl Default for Event {
    fn default() -> Self {
        Event {
            time: 0,
            order: 0,
            rules: 0,
            site: NO_VHOST,
        }
    }
}

/// Time deltas (zigzag) below this fit in the header byte; this value means a varint
/// follows.
const TIME_ESCAPE: u8 = 31;
/// The longest encoded event: header, an IPv6 key, five varints, four hashes.
pub(super) const MAX_EVENT: usize = 1 + 17 + 5 * 10 + 4 * 8;

/// One collector's events of one grouping in the order it observed them, each encoded
/// against the one before it:
///
/// - a header byte: bit 0 set when the rule mask changed, bit 1 when the source's key
///   changed, bit 2 when the virtual host changed; bits 3..8 the zigzag time delta in
///   seconds when below [`TIME_ESCAPE`], else `TIME_ESCAPE`;
/// - the time delta as a LEB128 varint when it did not fit;
/// - the key, when it changed: a byte with the prefix length (plus 64 for IPv6), the 4 or 16
///   address bytes, and the virtual host's id plus one (0 for none) as a varint;
/// - the rule mask as a varint, when it changed;
/// - the virtual host's id plus one (0 for none) as a varint, when it changed;
/// - the zigzag delta of `order` as a varint;
/// - one 8-byte little-endian hash per field that a matched distinct rule counts, fields in
///   `Field::ALL` order.
///
/// Logs are mostly in time order and most lines have the previous line's source, so most
/// events take 3 or 4 bytes plus 8 per distinct value, and writing one touches only the end
/// of one buffer: keys are looked up once per change, at the end, where a tight loop
/// overlaps the cache misses that the scan would wait for one by one.
#[derive(Default)]
pub(super) struct Journal {
    /// The encoded events in `..len`, then room that `push` writes the next one into
    /// directly: at least [`MAX_EVENT`] bytes once anything was written.
    pub(super) bytes: Vec<u8>,
    pub(super) len: usize,
    /// The last event written and its key (net, vhost), which the next is encoded against.
    pub(super) last: (Option<(IpNet, u32)>, Event),
    /// Where the events go once `bytes` holds `at` bytes of them; `None`: they stay.
    spill_to: Option<Arc<SpillTo>>,
    /// The events written out, which come before those in `bytes`.
    pub(super) spilled: Option<Spilled>,
    /// Why events could not be written out (they were kept in memory instead).
    pub(super) spill_error: Option<String>,
}

/// How far past its events a journal's buffer is zeroed when it needs room: the zeroing is
/// spread over many events and leaves at most this much unused.
pub(super) const JOURNAL_ROOM: usize = 1 << 16;

impl Journal {
    /// A journal that writes its events out as `spill_to` says.
    pub(super) fn new(spill_to: Option<Arc<SpillTo>>) -> Journal {
        Journal {
            spill_to,
            ..Journal::default()
        }
    }

    /// Writes one event; `key` is `None` when it is the last event's.
    pub(super) fn push(&mut self, key: Option<(IpNet, u32)>, e: Event, hashes: &[u64]) {
        // Written in place: no zeroed buffer per event and no copy of it.
        if self.bytes.len() < self.len + MAX_EVENT {
            self.make_room();
        }
        let buf = &mut self.bytes[self.len..self.len + MAX_EVENT];
        let mut n = 1;
        // Read in place: copying the last key and event out cost a dozen moves per event.
        let last = &mut self.last;
        let dt = zigzag(e.time.wrapping_sub(last.1.time));
        let small = if dt < u64::from(TIME_ESCAPE) {
            dt as u8
        } else {
            n += write_varint(&mut buf[n..], dt);
            TIME_ESCAPE
        };
        let new_key = key.filter(|&k| Some(k) != last.0);
        let new_rules = e.rules != last.1.rules;
        let new_site = e.site != last.1.site;
        buf[0] = small << 3
            | u8::from(new_site) << 2
            | u8::from(new_key.is_some()) << 1
            | u8::from(new_rules);
        if let Some((net, vhost)) = new_key {
            match net {
                IpNet::V4(v4) => {
                    buf[n] = v4.prefix_len();
                    buf[n + 1..n + 5].copy_from_slice(&v4.addr().octets());
                    n += 5;
                }
                IpNet::V6(v6) => {
                    buf[n] = 64 + v6.prefix_len();
                    buf[n + 1..n + 17].copy_from_slice(&v6.addr().octets());
                    n += 17;
                }
            }
            n += write_varint(&mut buf[n..], u64::from(vhost.wrapping_add(1)));
            last.0 = new_key;
        }
        if new_rules {
            n += write_varint(&mut buf[n..], e.rules);
        }
        if new_site {
            n += write_varint(&mut buf[n..], u64::from(e.site.wrapping_add(1)));
        }
        n += write_varint(
            &mut buf[n..],
            zigzag(e.order.wrapping_sub(last.1.order) as i64),
        );
        for h in hashes.iter().take(4) {
            buf[n..n + 8].copy_from_slice(&h.to_le_bytes());
            n += 8;
        }
        self.len += n;
        last.1 = e;
    }

    /// Room for the next event, once the buffer's room is used up: the events are
    /// written out when they reach the spill size, else the buffer grows. Out of line, as it
    /// runs once per [`JOURNAL_ROOM`] bytes.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        if self.spill_to.as_ref().is_some_and(|to| self.len >= to.at) && self.spill() {
            return;
        }
        let room = self
            .spill_to
            .as_ref()
            .map_or(JOURNAL_ROOM, |to| to.at.min(JOURNAL_ROOM));
        self.bytes.resize(self.len + MAX_EVENT + room, 0);
    }

    /// Writes the events in memory out as one segment and empties the buffer (its room
    /// stays): the next event is still encoded against the last one written. False when
    /// there is nowhere to write or writing failed; after a failure (kept in `spill_error`)
    /// the journal no longer tries.
    fn spill(&mut self) -> bool {
        let Some(to) = self.spill_to.clone() else {
            return false;
        };
        let written = match &mut self.spilled {
            Some(s) => Ok(s),
            None => Spilled::create(&to.dir).map(|s| self.spilled.insert(s)),
        }
        .and_then(|s| s.write(self.bytes.get(..self.len).unwrap_or_default()));
        match written {
            Ok(()) => {
                self.len = 0;
                true
            }
            Err(e) => {
                self.spill_error = Some(format!(
                    "could not write detection events to {}: {e}; they were kept in memory",
                    to.dir.display()
                ));
                self.spill_to = None;
                false
            }
        }
    }

    /// Writes out the events in memory of a journal that takes no more, and frees its
    /// buffer.
    pub(super) fn spill_all(&mut self) {
        if self.len > 0 && self.spill() {
            self.bytes = Vec::new();
        }
    }

    /// The events still in memory.
    pub(super) fn encoded(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Calls `f` with each event, its key when it changed, and its hashes (8 bytes each):
    /// those written out first, then those in memory. `distinct` gives per field the rules
    /// that count it. Fails only when events written out cannot be read back.
    pub(super) fn for_each(
        &self,
        distinct: &[u64; 4],
        mut f: impl FnMut(Option<(IpNet, u32)>, Event, &[u8]),
    ) -> std::io::Result<()> {
        let mut last = Event::default();
        // How many hashes an event of the current rule mask carries: found when the mask
        // changes, which is rare, not per event.
        let hashes_of = |rules: u64| distinct.iter().filter(|&&d| d & rules != 0).count();
        let mut n = hashes_of(last.rules);
        // Each segment written out, then the events in memory, through one decoding loop:
        // with a loop per source of bytes, the callbacks were no longer inlined into it.
        let mut segment = Vec::new();
        let mut next_segment = 0;
        let mut in_memory = true;
        loop {
            let b: &[u8] = match &self.spilled {
                Some(s) if s.read_segment(next_segment, &mut segment)? => {
                    next_segment += 1;
                    &segment
                }
                _ if in_memory => {
                    in_memory = false;
                    self.encoded()
                }
                _ => return Ok(()),
            };
            let mut pos = 0;
            // Segments hold whole events, as `push` wrote them: anything else is a broken
            // invariant (or a temporary file changed under the run), and fails the run.
            while let Some(&head) = b.get(pos) {
                pos += 1;
                let dt = match head >> 3 {
                    TIME_ESCAPE => match read_varint(b, &mut pos) {
                        Some(v) => v,
                        None => return Err(corrupt(pos)),
                    },
                    small => u64::from(small),
                };
                last.time = last.time.wrapping_add(unzigzag(dt));
                let mut key = None;
                if head & 2 != 0 {
                    match read_key(b, &mut pos) {
                        Some(k) => key = Some(k),
                        None => return Err(corrupt(pos)),
                    }
                }
                if head & 1 != 0 {
                    match read_varint(b, &mut pos) {
                        Some(v) => last.rules = v,
                        None => return Err(corrupt(pos)),
                    }
                    n = hashes_of(last.rules);
                }
                if head & 4 != 0 {
                    match read_varint(b, &mut pos) {
                        Some(v) => last.site = (v as u32).wrapping_sub(1),
                        None => return Err(corrupt(pos)),
                    }
                }
                match read_varint(b, &mut pos) {
                    Some(v) => last.order = last.order.wrapping_add(unzigzag(v) as u64),
                    None => return Err(corrupt(pos)),
                }
                let Some(hashes) = b.get(pos..pos + 8 * n) else {
                    return Err(corrupt(pos));
                };
                pos += 8 * n;
                f(key, last, hashes);
            }
        }
    }
}

/// The error for a journal that does not decode: events are only ever written by
/// `Journal::push`, so this is a bug or a spill file changed behind the run's back.
fn corrupt(at: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("detection events are corrupt at byte {at} of a segment"),
    )
}

/// Reads a key as `Journal::push` writes it.
fn read_key(b: &[u8], pos: &mut usize) -> Option<(IpNet, u32)> {
    let tag = *b.get(*pos)?;
    *pos += 1;
    let net = if tag < 64 {
        let octets: [u8; 4] = b.get(*pos..*pos + 4)?.try_into().ok()?;
        *pos += 4;
        IpNet::V4(ipnet::Ipv4Net::new(octets.into(), tag).ok()?)
    } else {
        let octets: [u8; 16] = b.get(*pos..*pos + 16)?.try_into().ok()?;
        *pos += 16;
        IpNet::V6(ipnet::Ipv6Net::new(octets.into(), tag - 64).ok()?)
    };
    let vhost = u32::try_from(read_varint(b, pos)?).ok()?.wrapping_sub(1);
    Some((net, vhost))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Writes `v` as LEB128 (at most 10 bytes) and returns its length.
fn write_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

pub(super) const NO_VHOST: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) net: IpNet,
    pub(super) vhost: u32,
    pub(super) grouping: u8,
}

/// Two words instead of the derived field-by-field hash of `IpNet`: keys are hashed once
/// per change of source in each journal.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (addr, tag) = match self.net {
            IpNet::V4(n) => (u128::from(u32::from(n.addr())), n.prefix_len()),
            IpNet::V6(n) => (u128::from(n.addr()), 0x80 | n.prefix_len()),
        };
        state.write_u128(addr);
        state.write_u64(
            u64::from(self.vhost) << 16 | u64::from(tag) << 8 | u64::from(self.grouping),
        );
    }
}

/// Hashes sources and virtual hosts, which attackers choose. Randomly seeded (see
/// `CompiledRules`' hasher for why foldhash): SipHash was a tenth of the cost of a line.
pub(super) type KeyHasher = foldhash::quality::RandomState;

#[cfg(test)]
pub(super) mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_journal_cut_mid_event_fails_loudly() {
        let mut j = Journal::new(None);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let event = |time, order| Event {
            time,
            order,
            rules: 1,
            site: NO_VHOST,
        };
        j.push(Some((IpNet::from(ip), NO_VHOST)), event(10, 1), &[]);
        // An order delta of 299 takes a two-byte varint.
        j.push(None, event(11, 300), &[]);
        let distinct = [0u64; 4];
        let mut seen = 0;
        j.for_each(&distinct, |_, _, _| seen += 1).unwrap();
        assert_eq!(seen, 2);
        j.len -= 1;
        let err = j.for_each(&distinct, |_, _, _| {}).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Events read back from a journal are the events written, with their keys.
        #[test]
        fn journals_round_trip(
            events in proptest::collection::vec(
                (0usize..5, any::<i64>(), any::<u64>(), 1u64.., any::<[u64; 4]>()),
                0..60,
            ),
            small in any::<bool>(),
        ) {
            let keys: [(IpNet, u32); 5] = [
                ("192.0.2.1/32".parse().expect("net"), NO_VHOST),
                ("192.0.2.1/32".parse().expect("net"), 0),
                ("2001:db8::/64".parse().expect("net"), 7),
                ("0.0.0.0/0".parse().expect("net"), u32::MAX - 1),
                ("::/128".parse().expect("net"), NO_VHOST),
            ];
            let distinct = [0b1, 0b10, 0, 1 << 63];
            let mut journal = Journal::default();
            let mut want = Vec::new();
            let mut last_key = None;
            for &(k, time, order, rules, hashes) in &events {
                // Small deltas as well as arbitrary ones.
                let (time, order) = if small { (time % 100, order % 1000) } else { (time, order) };
                let n = distinct.iter().filter(|&&d| d & rules != 0).count();
                journal.push(Some(keys[k]), Event { time, order, rules, site: NO_VHOST }, &hashes[..n]);
                let bytes: Vec<u8> = hashes[..n].iter().flat_map(|h| h.to_le_bytes()).collect();
                // A key is written only when it changes.
                let key = (last_key != Some(keys[k])).then_some(keys[k]);
                last_key = Some(keys[k]);
                want.push((key, Event { time, order, rules, site: NO_VHOST }, bytes));
            }
            let mut got = Vec::new();
            journal.for_each(&distinct, |key, e, hashes| got.push((key, e, hashes.to_vec()))).expect("read");
            prop_assert_eq!(got, want);
        }
    }
    /// The distinct-field masks `fill_journal` writes with.
    const FILL_DISTINCT: [u64; 4] = [0b1, 0b10, 0b100, 0b1000];

    /// Pushes 20,000 events of many sizes and returns them as reading back must give them.
    pub(in crate::detect) fn fill_journal(journal: &mut Journal) -> Vec<(Event, Vec<u8>)> {
        let distinct = FILL_DISTINCT;
        let net: IpNet = "2001:db8::/64".parse().expect("net");
        let mut want = Vec::new();
        for i in 0..20_000u64 {
            // Keys, masks and time steps change often, so events take many sizes.
            let key = (i % 3 == 0).then_some((net, (i % 7) as u32));
            let e = Event {
                time: (i * i % 1_000_003) as i64,
                order: i * 977,
                rules: 1 + i % 15,
                // Sites change often too, and take every size of varint.
                site: if i % 5 == 0 {
                    NO_VHOST
                } else {
                    (i % 11) as u32 * 40_000
                },
            };
            let hashes = [i, !i, i << 7, i.rotate_left(33)];
            let n = distinct.iter().filter(|&&d| d & e.rules != 0).count();
            journal.push(key, e, &hashes[..n]);
            want.push((
                e,
                hashes[..n]
                    .iter()
                    .flat_map(|h| h.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ));
        }
        want
    }

    pub(in crate::detect) fn read_journal(journal: &Journal) -> Vec<(Event, Vec<u8>)> {
        let mut got = Vec::new();
        journal
            .for_each(&FILL_DISTINCT, |_, e, hashes| {
                got.push((e, hashes.to_vec()))
            })
            .expect("read");
        got
    }

    /// A journal that outgrows its room several times keeps every event, and its buffer
    /// never holds much more than the events.
    #[test]
    fn journals_round_trip_across_growth() {
        let mut journal = Journal::default();
        let want = fill_journal(&mut journal);
        assert!(journal.encoded().len() > 4 * JOURNAL_ROOM);
        assert!(journal.bytes.len() <= journal.encoded().len() + MAX_EVENT + JOURNAL_ROOM);
        assert!(journal.spilled.is_none());
        assert_eq!(read_journal(&journal), want);
    }

    /// A journal that writes its events out keeps every one of them, in order, holds at
    /// most about the spill size in memory, and leaves no file behind.
    #[test]
    fn journals_written_out_round_trip_and_stay_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = 10_000;
        let to = SpillTo {
            dir: dir.path().to_path_buf(),
            at,
        };
        let mut journal = Journal::new(Some(Arc::new(to)));
        let want = fill_journal(&mut journal);
        let spilled = journal.spilled.as_ref().expect("written out").bytes();
        assert!(spilled > 20 * at as u64, "{spilled} bytes written out");
        assert!(journal.encoded().len() < at + MAX_EVENT);
        assert!(journal.bytes.len() <= at + 2 * MAX_EVENT + at);
        assert_eq!(journal.spill_error, None);
        assert_eq!(read_journal(&journal), want);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
