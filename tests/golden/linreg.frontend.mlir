builtin.module {
  func.func private @nn.dense(%x: tensor<?x10xf32> loc("stdlib/nn.irn":8:11), %w: tensor<10x1xf32> {nn.param = "w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %b: tensor<1xf32> {nn.param = "b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x1xf32> {
    %0 = nn.matmul %x, %w : (tensor<?x10xf32>, tensor<10x1xf32>) -> tensor<?x1xf32> loc("stdlib/nn.irn":11:14)
    %1 = nn.add %0, %b : (tensor<?x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc("stdlib/nn.irn":11:18)
    func.return %1 : tensor<?x1xf32> loc("stdlib/nn.irn":11:18)
  } loc("stdlib/nn.irn":8:1)
  func.func @linreg(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x1xf32> {
    %0 = func.call @nn.dense(%x, %dense_0.w, %dense_0.b) : (tensor<?x10xf32>, tensor<10x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc("examples/linreg.irn":6:12)
    func.return %0 : tensor<?x1xf32> loc("examples/linreg.irn":6:12)
  } loc("examples/linreg.irn":5:1)
  func.func private @nn.mse(%pred: tensor<?x1xf32> loc("stdlib/nn.irn":229:9), %target: tensor<?x1xf32> loc("stdlib/nn.irn":229:23)) -> tensor<f32> {
    %diff = nn.sub %pred, %target : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<?x1xf32> loc("stdlib/nn.irn":230:17)
    %0 = nn.mul %diff, %diff : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<?x1xf32> loc("stdlib/nn.irn":231:22)
    %1 = nn.reduce_mean %0 {axes = array<i64>} : tensor<?x1xf32> -> tensor<f32> loc("stdlib/nn.irn":231:12)
    func.return %1 : tensor<f32> loc("stdlib/nn.irn":231:12)
  } loc("stdlib/nn.irn":229:1)
  func.func @linreg.loss(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %y: tensor<?x1xf32> {nn.target = "y"} loc("examples/linreg.irn":9:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<f32> {
    %0 = func.call @linreg(%x, %dense_0.w, %dense_0.b) : (tensor<?x10xf32>, tensor<10x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc("examples/linreg.irn":12:21)
    %1 = func.call @nn.mse(%0, %y) : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<f32> loc("examples/linreg.irn":12:17)
    func.return %1 : tensor<f32> loc("examples/linreg.irn":12:17)
  } loc("examples/linreg.irn":9:1)
  func.func @linreg.eval(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %y: tensor<?x1xf32> {nn.target = "y"} loc("examples/linreg.irn":9:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> (tensor<f32>, tensor<?x1xf32>) {
    %0 = func.call @linreg(%x, %dense_0.w, %dense_0.b) : (tensor<?x10xf32>, tensor<10x1xf32>, tensor<1xf32>) -> tensor<?x1xf32> loc("examples/linreg.irn":12:21)
    %1 = func.call @nn.mse(%0, %y) : (tensor<?x1xf32>, tensor<?x1xf32>) -> tensor<f32> loc("examples/linreg.irn":12:17)
    func.return %1, %0 : tensor<f32>, tensor<?x1xf32> loc("examples/linreg.irn":12:17)
  } loc("examples/linreg.irn":9:1)
  func.func @linreg.grad(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %y: tensor<?x1xf32> {nn.target = "y"} loc("examples/linreg.irn":9:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> (tensor<f32>, tensor<10x1xf32> {nn.grad = "dense_0.w"}, tensor<1xf32> {nn.grad = "dense_0.b"}) {
    %0, %1, %2 = ad.value_and_grad @linreg.loss(%x, %y, %dense_0.w, %dense_0.b) wrt [2, 3] : (tensor<?x10xf32>, tensor<?x1xf32>, tensor<10x1xf32>, tensor<1xf32>) -> (tensor<f32>, tensor<10x1xf32>, tensor<1xf32>) loc("examples/linreg.irn":9:1)
    func.return %0, %1, %2 : tensor<f32>, tensor<10x1xf32>, tensor<1xf32> loc("examples/linreg.irn":9:1)
  } loc("examples/linreg.irn":9:1)
  func.func @linreg.update(%dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %grad.dense_0.w: tensor<10x1xf32> {nn.grad = "dense_0.w"} loc("examples/linreg.irn":13:17), %grad.dense_0.b: tensor<1xf32> {nn.grad = "dense_0.b"} loc("examples/linreg.irn":13:17), %t: tensor<f32> {nn.opt = "t"} loc("examples/linreg.irn":13:17), %lr: tensor<f32> {nn.hyper = "lr"} loc("examples/linreg.irn":13:17)) -> (tensor<10x1xf32> {nn.param = "dense_0.w"}, tensor<1xf32> {nn.param = "dense_0.b"}, tensor<f32> {nn.opt = "t"}) {
    %0 = nn.constant dense<1.000000e+00> : tensor<f32> loc("examples/linreg.irn":13:17)
    %1 = nn.add %t, %0 : (tensor<f32>, tensor<f32>) -> tensor<f32> loc("examples/linreg.irn":13:17)
    %2 = nn.mul %grad.dense_0.w, %lr : (tensor<10x1xf32>, tensor<f32>) -> tensor<10x1xf32> loc("examples/linreg.irn":13:17)
    %3 = nn.sub %dense_0.w, %2 : (tensor<10x1xf32>, tensor<10x1xf32>) -> tensor<10x1xf32> loc("examples/linreg.irn":13:17)
    %4 = nn.mul %grad.dense_0.b, %lr : (tensor<1xf32>, tensor<f32>) -> tensor<1xf32> loc("examples/linreg.irn":13:17)
    %5 = nn.sub %dense_0.b, %4 : (tensor<1xf32>, tensor<1xf32>) -> tensor<1xf32> loc("examples/linreg.irn":13:17)
    func.return %3, %5, %1 : tensor<10x1xf32>, tensor<1xf32>, tensor<f32> loc("examples/linreg.irn":13:17)
  } loc("examples/linreg.irn":13:17)
  func.func @linreg.step(%x: tensor<?x10xf32> {nn.input = "x"} loc("examples/linreg.irn":5:14), %y: tensor<?x1xf32> {nn.target = "y"} loc("examples/linreg.irn":9:14), %dense_0.w: tensor<10x1xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<1xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %t: tensor<f32> {nn.opt = "t"} loc("examples/linreg.irn":13:17), %lr: tensor<f32> {nn.hyper = "lr"} loc("examples/linreg.irn":13:17)) -> (tensor<f32>, tensor<10x1xf32> {nn.param = "dense_0.w"}, tensor<1xf32> {nn.param = "dense_0.b"}, tensor<f32> {nn.opt = "t"}) {
    %0, %1, %2 = func.call @linreg.grad(%x, %y, %dense_0.w, %dense_0.b) : (tensor<?x10xf32>, tensor<?x1xf32>, tensor<10x1xf32>, tensor<1xf32>) -> (tensor<f32>, tensor<10x1xf32>, tensor<1xf32>) loc("examples/linreg.irn":9:1)
    %3, %4, %5 = func.call @linreg.update(%dense_0.w, %dense_0.b, %1, %2, %t, %lr) : (tensor<10x1xf32>, tensor<1xf32>, tensor<10x1xf32>, tensor<1xf32>, tensor<f32>, tensor<f32>) -> (tensor<10x1xf32>, tensor<1xf32>, tensor<f32>) loc("examples/linreg.irn":9:1)
    func.return %0, %3, %4, %5 : tensor<f32>, tensor<10x1xf32>, tensor<1xf32>, tensor<f32> loc("examples/linreg.irn":9:1)
  } loc("examples/linreg.irn":9:1)
} loc(unknown)
