import Foundation
import Testing
@testable import Convolve

/// `max(dim:)` and `argmax(dim:)` share one scan and PyTorch's rules: the first maximum on ties, NaN
/// as the maximum (its first occurrence), the gradient to the element chosen.
@Suite struct ReductionTests {
    @Test func maxAndArgmaxFollowPyTorch() {
        let nan = Float.nan
        let x = Tensor([1, 3, 3, 2,  1, nan, 3, nan,  nan, 5, 0, 1,  -1, -2, -1, -3], shape: [4, 4])
        #expect(x.argmax(dim: 1) == [1, 1, 0, 0])   // torch.argmax(x, 1) on the same rows
        let m = x.max(dim: 1)
        #expect(m.scalars[0] == 3 && m.scalars[1].isNaN && m.scalars[2].isNaN && m.scalars[3] == -1)
        #expect(x.argmax(dim: 0) == [2, 1, 0, 1])
        let y = Tensor([0, 2, 2, 1, 7, 7], shape: [2, 3], requiresGrad: true)
        y.max(dim: 1).sum().backward()
        #expect(y.grad!.scalars == [0, 1, 0, 0, 1, 0])
    }
}
