/// ImageNet-1k (ILSVRC 2012) as pretrained models know it: its 1000 class names in index order
/// (``classNames``, `ImageNetClasses.swift`) and the per-channel statistics torchvision's models
/// normalize RGB with. The images themselves are not distributed freely; Convolve reads the weights
/// trained on them.
public enum ImageNet {
    /// The per-channel means of RGB in [0, 1] (torchvision's `Normalize(mean=…)`).
    public static let mean = [0.485, 0.456, 0.406]
    /// The per-channel standard deviations of RGB in [0, 1].
    public static let std = [0.229, 0.224, 0.225]
}
