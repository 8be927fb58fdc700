//! Record ids: UUIDv7 (RFC 9562 §5.7) whose time is the `now` the flow was given, not another reading
//! of the clock, and whose random bits come from the randomness the caller was handed.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::crypto::Random;

/// Counts the ids this process made. `now` is whole seconds, so ids made within one second would
/// otherwise sort at random; this counter (RFC 9562 §6.2, method 1: 18 bits, in `rand_a` and the top of
/// `rand_b`) keeps the ids one process makes within a second in the order they were made, for the
/// display lists that break ties by id (no cursor relies on it). Ids of the same second made by two
/// nodes sort in no particular order between them, and the order flips once where the counter wraps
/// (every 2^18 ids); the 56 random bits that follow keep ids unique regardless. The counter is visible in
/// the ids apps see (a family id as `fid`, a person's id as a public `sub`): two of an app's tokens tell
/// how many ids this node made between them (Low, THREAT-MODEL "Subjects, session ids and keys").
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A new id dated `now` (epoch seconds).
pub fn new_id(now: i64, rng: &dyn Random) -> uuid::Uuid {
    let millis = u64::try_from(now).unwrap_or(0).saturating_mul(1000);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 10];
    rng.fill(&mut bytes[3..]);
    // The builder keeps the low 12 bits of bytes 0–1 (`rand_a`) and the low 6 of byte 2.
    bytes[0] = ((seq >> 14) & 0x0f) as u8;
    bytes[1] = (seq >> 6) as u8;
    bytes[2] = (seq & 0x3f) as u8;
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Zeros;

    impl Random for Zeros {
        fn fill(&self, out: &mut [u8]) {
            out.fill(0);
        }
    }

    #[test]
    fn an_id_carries_the_given_time_and_sorts_in_the_order_made() {
        let now = 1_900_000_000;
        let ids: Vec<uuid::Uuid> = (0..100).map(|_| new_id(now, &Zeros)).collect();
        for id in &ids {
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            let (secs, _) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs, now as u64);
        }
        // Other tests make ids at the same time: each id is still after the one made before it (the
        // counter wraps only after 2^18 ids).
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(
            new_id(now + 1, &Zeros) > new_id(now, &Zeros),
            "a later second sorts later"
        );
    }
}
