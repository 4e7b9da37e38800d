//! Byte units, and the labels the benches print for byte counts.

/// 1 KiB.
pub const KIB: usize = 1 << 10;
/// 1 MiB.
pub const MIB: usize = 1 << 20;
/// 1 GiB.
pub const GIB: usize = 1 << 30;

/// Formats a byte count as "100 MB", "64 MiB", "512 B"...
pub fn bytes(n: usize) -> String {
    match n {
        n if n >= GIB && n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{} MB", n / 1_000_000),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_labels() {
        assert_eq!(bytes(100_000_000), "100 MB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(1 << 30), "1 GiB");
        assert_eq!(bytes(24), "24 B");
    }
}
