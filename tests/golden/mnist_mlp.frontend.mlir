builtin.module {
  func.func private @nn.dense(%x: tensor<?x784xf32> loc("stdlib/nn.irn":8:11), %w: tensor<784x256xf32> {nn.param = "w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %b: tensor<256xf32> {nn.param = "b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x256xf32> {
    %0 = nn.matmul %x, %w : (tensor<?x784xf32>, tensor<784x256xf32>) -> tensor<?x256xf32> loc("stdlib/nn.irn":11:14)
    %1 = nn.add %0, %b : (tensor<?x256xf32>, tensor<256xf32>) -> tensor<?x256xf32> loc("stdlib/nn.irn":11:18)
    func.return %1 : tensor<?x256xf32> loc("stdlib/nn.irn":11:18)
  } loc("stdlib/nn.irn":8:1)
  func.func private @nn.dense_1(%x: tensor<?x256xf32> loc("stdlib/nn.irn":8:11), %w: tensor<256x128xf32> {nn.param = "w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %b: tensor<128xf32> {nn.param = "b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x128xf32> {
    %0 = nn.matmul %x, %w : (tensor<?x256xf32>, tensor<256x128xf32>) -> tensor<?x128xf32> loc("stdlib/nn.irn":11:14)
    %1 = nn.add %0, %b : (tensor<?x128xf32>, tensor<128xf32>) -> tensor<?x128xf32> loc("stdlib/nn.irn":11:18)
    func.return %1 : tensor<?x128xf32> loc("stdlib/nn.irn":11:18)
  } loc("stdlib/nn.irn":8:1)
  func.func private @nn.dense_2(%x: tensor<?x128xf32> loc("stdlib/nn.irn":8:11), %w: tensor<128x10xf32> {nn.param = "w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %b: tensor<10xf32> {nn.param = "b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x10xf32> {
    %0 = nn.matmul %x, %w : (tensor<?x128xf32>, tensor<128x10xf32>) -> tensor<?x10xf32> loc("stdlib/nn.irn":11:14)
    %1 = nn.add %0, %b : (tensor<?x10xf32>, tensor<10xf32>) -> tensor<?x10xf32> loc("stdlib/nn.irn":11:18)
    func.return %1 : tensor<?x10xf32> loc("stdlib/nn.irn":11:18)
  } loc("stdlib/nn.irn":8:1)
  func.func @mnist_mlp(%x: tensor<?x784xf32> {nn.input = "x"} loc("examples/mnist_mlp.irn":6:17), %dense_0.w: tensor<784x256xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<256xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_1.w: tensor<256x128xf32> {nn.param = "dense_1.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_1.b: tensor<128xf32> {nn.param = "dense_1.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_2.w: tensor<128x10xf32> {nn.param = "dense_2.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_2.b: tensor<10xf32> {nn.param = "dense_2.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<?x10xf32> {
    %0 = func.call @nn.dense(%x, %dense_0.w, %dense_0.b) : (tensor<?x784xf32>, tensor<784x256xf32>, tensor<256xf32>) -> tensor<?x256xf32> loc("examples/mnist_mlp.irn":7:14)
    %h = nn.relu %0 : tensor<?x256xf32> loc("examples/mnist_mlp.irn":7:9)
    %1 = func.call @nn.dense_1(%h, %dense_1.w, %dense_1.b) : (tensor<?x256xf32>, tensor<256x128xf32>, tensor<128xf32>) -> tensor<?x128xf32> loc("examples/mnist_mlp.irn":8:14)
    %h_1 = nn.relu %1 : tensor<?x128xf32> loc("examples/mnist_mlp.irn":8:9)
    %2 = func.call @nn.dense_2(%h_1, %dense_2.w, %dense_2.b) : (tensor<?x128xf32>, tensor<128x10xf32>, tensor<10xf32>) -> tensor<?x10xf32> loc("examples/mnist_mlp.irn":9:12)
    func.return %2 : tensor<?x10xf32> loc("examples/mnist_mlp.irn":9:12)
  } loc("examples/mnist_mlp.irn":6:1)
  func.func private @nn.cross_entropy(%logits: tensor<?x10xf32> loc("stdlib/nn.irn":88:19), %labels: tensor<?xi32> loc("stdlib/nn.irn":88:36)) -> tensor<f32> {
    %0 = nn.one_hot %labels {num_classes = 10 : i64} : tensor<?xi32> -> tensor<?x10xf32> loc("stdlib/nn.irn":89:22)
    %1 = nn.log_softmax %logits {axis = 1 : i64} : tensor<?x10xf32> loc("stdlib/nn.irn":89:52)
    %2 = nn.mul %0, %1 : (tensor<?x10xf32>, tensor<?x10xf32>) -> tensor<?x10xf32> loc("stdlib/nn.irn":89:50)
    %3 = nn.reduce_sum %2 {axes = array<i64: 1>} : tensor<?x10xf32> -> tensor<?xf32> loc("stdlib/nn.irn":89:18)
    %4 = nn.reduce_mean %3 {axes = array<i64>} : tensor<?xf32> -> tensor<f32> loc("stdlib/nn.irn":89:13)
    %5 = nn.neg %4 : tensor<f32> loc("stdlib/nn.irn":89:12)
    func.return %5 : tensor<f32> loc("stdlib/nn.irn":89:12)
  } loc("stdlib/nn.irn":88:1)
  func.func @mnist_mlp.loss(%x: tensor<?x784xf32> {nn.input = "x"} loc("examples/mnist_mlp.irn":6:17), %y: tensor<?xi32> {nn.target = "y"} loc("examples/mnist_mlp.irn":12:17), %dense_0.w: tensor<784x256xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<256xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_1.w: tensor<256x128xf32> {nn.param = "dense_1.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_1.b: tensor<128xf32> {nn.param = "dense_1.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_2.w: tensor<128x10xf32> {nn.param = "dense_2.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_2.b: tensor<10xf32> {nn.param = "dense_2.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> tensor<f32> {
    %0 = func.call @mnist_mlp(%x, %dense_0.w, %dense_0.b, %dense_1.w, %dense_1.b, %dense_2.w, %dense_2.b) : (tensor<?x784xf32>, tensor<784x256xf32>, tensor<256xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x10xf32>, tensor<10xf32>) -> tensor<?x10xf32> loc("examples/mnist_mlp.irn":14:31)
    %1 = func.call @nn.cross_entropy(%0, %y) : (tensor<?x10xf32>, tensor<?xi32>) -> tensor<f32> loc("examples/mnist_mlp.irn":14:17)
    func.return %1 : tensor<f32> loc("examples/mnist_mlp.irn":14:5)
  } loc("examples/mnist_mlp.irn":12:1)
  func.func @mnist_mlp.grad(%x: tensor<?x784xf32> {nn.input = "x"} loc("examples/mnist_mlp.irn":6:17), %y: tensor<?xi32> {nn.target = "y"} loc("examples/mnist_mlp.irn":12:17), %dense_0.w: tensor<784x256xf32> {nn.param = "dense_0.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_0.b: tensor<256xf32> {nn.param = "dense_0.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_1.w: tensor<256x128xf32> {nn.param = "dense_1.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_1.b: tensor<128xf32> {nn.param = "dense_1.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5), %dense_2.w: tensor<128x10xf32> {nn.param = "dense_2.w", nn.init = "glorot_uniform"} loc("stdlib/nn.irn":9:5), %dense_2.b: tensor<10xf32> {nn.param = "dense_2.b", nn.init = "zeros"} loc("stdlib/nn.irn":10:5)) -> (tensor<f32>, tensor<784x256xf32>, tensor<256xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x10xf32>, tensor<10xf32>) {
    %0, %1, %2, %3, %4, %5, %6 = ad.value_and_grad @mnist_mlp.loss(%x, %y, %dense_0.w, %dense_0.b, %dense_1.w, %dense_1.b, %dense_2.w, %dense_2.b) wrt [2, 3, 4, 5, 6, 7] : (tensor<?x784xf32>, tensor<?xi32>, tensor<784x256xf32>, tensor<256xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x10xf32>, tensor<10xf32>) -> (tensor<f32>, tensor<784x256xf32>, tensor<256xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x10xf32>, tensor<10xf32>) loc("examples/mnist_mlp.irn":12:1)
    func.return %0, %1, %2, %3, %4, %5, %6 : tensor<f32>, tensor<784x256xf32>, tensor<256xf32>, tensor<256x128xf32>, tensor<128xf32>, tensor<128x10xf32>, tensor<10xf32> loc("examples/mnist_mlp.irn":12:1)
  } loc("examples/mnist_mlp.irn":12:1)
} loc(unknown)
