// One import gives a Swift user the whole library, as `import torch` does: `import ConvolveTraining`
// brings tensors and autograd (Convolve), layers and optimizers (ConvolveNN), data, formats and files
// (ConvolveData, which re-exports ConvolveIO) and the training engine. The finer modules stay
// importable on their own for those who want less.
@_exported import Convolve
@_exported import ConvolveNN
@_exported import ConvolveData
