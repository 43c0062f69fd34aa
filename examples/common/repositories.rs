//! Synthetic repositories shaped like real ones, for the examples that
//! size the archive (archive_size, bench_compact): included by `#[path]`,
//! so both measure the same data.

use docker_pulls::document::RepositoryStats;

/// `count` repositories shaped like real ones, seeded: the same every time.
pub fn repositories(count: usize) -> Vec<RepositoryStats> {
    let mut rng = fastrand::Rng::with_seed(17);
    let word = |rng: &mut fastrand::Rng, min: usize, max: usize| -> String {
        let length = rng.usize(min..=max);
        (0..length)
            .map(|i| {
                if i > 0 && i + 1 < length && rng.u8(..10) == 0 {
                    '-'
                } else {
                    rng.lowercase()
                }
            })
            .collect()
    };
    let namespaces: Vec<String> = (0..40).map(|_| word(&mut rng, 4, 14)).collect();
    (0..count)
        .map(|i| {
            let namespace = if rng.u8(..3) == 0 {
                "library".to_owned()
            } else {
                namespaces[rng.usize(..namespaces.len())].clone()
            };
            // Log-uniform from 10 to 10^10.
            let pull_count = 10f64.powf(1.0 + rng.f64() * 9.0) as u64;
            RepositoryStats {
                namespace,
                name: format!("{}{}", word(&mut rng, 3, 26), i % 10),
                pull_count,
                star_count: (pull_count as f64).sqrt() as u64 / 3,
                collaborator_count: Some(rng.u64(..4)),
            }
        })
        .collect()
}
