import Convolve
