//! Weight initialisation. `det_uniform` is an exact integer recipe (splitmix64 over the
//! element index), shared with tests/fixtures/make_fixtures.py, so Rust and PyTorch build the
//! same weights bit for bit without storing them. `Rng` draws N(0, std) for real training.

/// FNV-1a, 64 bit: turns a parameter name into a seed.
pub fn fnv1a64(s: &str) -> u64 {
    fnv1a64_bytes(s.as_bytes())
}

/// FNV-1a, 64 bit, over bytes (also the fingerprint of a weights file).
pub fn fnv1a64_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

pub fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

/// `n` values in [-1, 1), exact in f32: the top 24 bits of splitmix64 of (seed, index).
pub fn det_uniform(seed: u64, n: usize) -> Vec<f32> {
    const G: u64 = 0x9E3779B97F4A7C15;
    (0..n as u64)
        .map(|i| {
            let z = seed.wrapping_mul(G).wrapping_add((i + 1).wrapping_mul(G));
            let u = (splitmix64_mix(z) >> 40) as f32 / 16777216.0;
            u * 2.0 - 1.0
        })
        .collect()
}

/// A small seeded generator (splitmix64) for initialisation, shuffling and noise; its state
/// is one u64, so checkpoints can store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    pub state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E3779B97F4A7C15);
        splitmix64_mix(self.state)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * libm::log(u1)).sqrt() * libm::cos(2.0 * std::f64::consts::PI * u2)
    }
    /// Uniform integer in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
    pub fn normal_vec(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n).map(|_| mean + std * self.normal() as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn det_uniform_is_in_range_and_exact() {
        let v = det_uniform(fnv1a64("check"), 1000);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        // Every value is k / 2^23 - 1 for an integer k: exact in f32.
        assert!(v.iter().all(|x| ((x + 1.0) * 8388608.0).fract() == 0.0));
        let mean: f32 = v.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1);
    }
    #[test]
    fn fnv_matches_the_published_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (Fowler/Noll/Vo test vectors).
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(""), 0xcbf29ce484222325);
    }
    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(7);
        let v: Vec<f64> = (0..20000).map(|_| r.normal()).collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(m.abs() < 0.03 && (var - 1.0).abs() < 0.05, "{m} {var}");
    }
}
