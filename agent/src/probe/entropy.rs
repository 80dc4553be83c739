//! The entropy collector: the kernel random pool as node_exporter serves
//! it, `node_entropy_available_bits` and `node_entropy_pool_size_bits`.

use std::path::Path;

use countywatch_wire::{MetricFamily, MetricKind};

use super::file_probe::{FileProbe, number};
use super::parse_error::ProbeParseError;

/// The probe reading `<procfs>/sys/kernel/random/{entropy_avail,poolsize}`.
pub fn probe(procfs: &Path, _sysfs: &Path) -> FileProbe {
    let random = procfs.join("sys/kernel/random");
    FileProbe::new(
        "entropy",
        vec![random.join("entropy_avail"), random.join("poolsize")],
        parse,
    )
}

/// Both files' texts to the two gauges.
pub fn parse(texts: &[Option<String>]) -> Result<Vec<MetricFamily>, ProbeParseError> {
    let available = number(texts[0].as_ref())
        .ok_or(ProbeParseError::Malformed("couldn't get entropy_avail"))?;
    let pool_size = number(texts.get(1).and_then(Option::as_ref))
        .ok_or(ProbeParseError::Malformed("couldn't get entropy poolsize"))?;
    Ok(vec![
        MetricFamily::single(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            MetricKind::Gauge,
            available,
        ),
        MetricFamily::single(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            MetricKind::Gauge,
            pool_size,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_and_pool_size() {
        // 5.18 and later report 256 for both; a 3.10 kernel reports the
        // pool's real fill (e.g. 3012) and 4096.
        let families = parse(&[Some("3012\n".into()), Some("4096\n".into())]).unwrap();
        assert_eq!(families[0].name, "node_entropy_available_bits");
        assert_eq!(families[0].samples[0].value, 3012.0);
        assert_eq!(families[1].samples[0].value, 4096.0);
        assert!(parse(&[Some("x".into()), Some("1".into())]).is_err());
        assert!(parse(&[Some("1".into()), None]).is_err());
    }
}
