/// Convolve's version (`convolve --version`; recorded in every run's `run.json` and checkpoint).
public let convolveVersion = "0.4.0"
