//! `--shard I/N`: one load generator's disjoint slice of the devices, so
//! that many generators (CI matrix jobs, Kubernetes Jobs) load one service
//! together and `idprov bench merge` combines what they measured.

use std::fmt;
use std::str::FromStr;

/// Slice `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which slice, 1..=count.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// The whole run as one slice.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Whether device number `i` (0-based, over the whole run) is in this
    /// slice. The slices are disjoint and together cover every device.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index - 1
    }

    /// How many of `devices` are in this slice.
    pub fn len(&self, devices: usize) -> usize {
        (0..devices).filter(|&i| self.contains(i)).count()
    }

    /// Whether this slice of `devices` is empty.
    pub fn is_empty(&self, devices: usize) -> bool {
        self.len(devices) == 0
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shard: write I/N with 1 ≤ I ≤ N, e.g. 2/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 3, count: 7 }.to_string(), "3/7");
    }

    #[test]
    fn slices_are_disjoint_and_cover_every_device() {
        for count in 1..=6 {
            for devices in [0, 1, 5, 17, 100] {
                let mut seen = vec![0u32; devices];
                let mut total = 0;
                for index in 1..=count {
                    let s = Shard { index, count };
                    total += s.len(devices);
                    for (i, n) in seen.iter_mut().enumerate() {
                        if s.contains(i) {
                            *n += 1;
                        }
                    }
                }
                assert_eq!(total, devices);
                assert!(seen.iter().all(|&n| n == 1), "{count} shards of {devices}");
            }
        }
    }
}
