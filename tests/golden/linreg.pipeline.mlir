builtin.module {
  func.func @linreg(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":8:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":9:5)) -> tensor<?x1xf32> {
    %0 = nn.matmul %x, %dense_0.w : (tensor<?x10xf32>, tensor<10x1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":10:14 at "examples/linreg.irn":6:12))
    %1 = nn.add %0, %dense_0.b : (tensor<?x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":10:18 at "examples/linreg.irn":6:12))
    func.return %1 : tensor<?x1xf32> loc("examples/linreg.irn":6:12)
  } loc("examples/linreg.irn":5:1)
  func.func @linreg.loss(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %y: tensor<?x1xf32> {nn.target = "y"} loc("examples/linreg.irn":9:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":8:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":9:5)) -> tensor<f32> {
    %0 = nn.matmul %x, %dense_0.w : (tensor<?x10xf32>, tensor<10x1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":10:14 at callsite("examples/linreg.irn":6:12 at "examples/linreg.irn":12:21)))
    %1 = nn.add %0, %dense_0.b : (tensor<?x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":10:18 at callsite("examples/linreg.irn":6:12 at "examples/linreg.irn":12:21)))
    %diff = nn.sub %1, %y : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":82:17 at "examples/linreg.irn":12:17))
    %2 = nn.mul %diff, %diff : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<?x1xf32> loc(callsite("stdlib/nn.irn":83:22 at "examples/linreg.irn":12:17))
    %3 = nn.reduce_mean %2 {axes = array<i64>} : tensor<?x1xf32> -> tensor<f32> loc(callsite("stdlib/nn.irn":83:12 at "examples/linreg.irn":12:17))
    func.return %3 : tensor<f32> loc("examples/linreg.irn":12:5)
  } loc("examples/linreg.irn":9:1)
} loc(unknown)
