// -----// IR after frontend //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:19)
    %1 = nn.exp %0 : tensor<f32> loc("tests/programs/stages.irn":7:19)
    %2 = nn.constant dense<2.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %3 = nn.div %1, %2 : (tensor<f32>, tensor<f32>) -> tensor<f32> loc("tests/programs/stages.irn":7:28)
    %4 = nn.mul %x, %3 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %5 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %6 = nn.add %4, %5 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %6 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %7 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %7 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after inline-functions //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:19)
    %1 = nn.exp %0 : tensor<f32> loc("tests/programs/stages.irn":7:19)
    %2 = nn.constant dense<2.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %3 = nn.div %1, %2 : (tensor<f32>, tensor<f32>) -> tensor<f32> loc("tests/programs/stages.irn":7:28)
    %4 = nn.mul %x, %3 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %5 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %6 = nn.add %4, %5 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %6 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %7 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %7 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after canonicalize //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %1 = nn.mul %x, %0 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %3 = nn.add %1, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %3 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %4 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after cse //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %1 = nn.mul %x, %0 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %3 = nn.add %1, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %3 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %4 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after dce //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %1 = nn.mul %x, %0 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %3 = nn.add %1, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %3 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %4 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after autodiff //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %0 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
    %1 = nn.mul %x, %0 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
    %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
    %3 = nn.add %1, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
    %h = nn.relu %3 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
    %4 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after fuse-elementwise //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %h = kernel.fused "elementwise" (%x) : (tensor<?x4xf32>) -> tensor<?x4xf32> {
    ^bb0(%0: tensor<?x4xf32> loc(unknown)):
      %1 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
      %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
      %3 = nn.mul %0, %1 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
      %4 = nn.add %3, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
      %h_1 = nn.relu %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
      kernel.yield %h_1 : tensor<?x4xf32> loc(unknown)
    } loc("tests/programs/stages.irn":7:9)
    %0 = nn.softmax %h {axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %0 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after plan-memory //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %h = kernel.fused "elementwise" (%x) {memplan.buffers = ["ws0"]} : (tensor<?x4xf32>) -> tensor<?x4xf32> {
    ^bb0(%0: tensor<?x4xf32> loc(unknown)):
      %1 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
      %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
      %3 = nn.mul %0, %1 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
      %4 = nn.add %3, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
      %h_1 = nn.relu %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
      kernel.yield %h_1 : tensor<?x4xf32> loc(unknown)
    } loc("tests/programs/stages.irn":7:9)
    %0 = nn.softmax %h {memplan.buffers = ["fresh"], axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %0 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// IR after emit-cpu //----- //
builtin.module {
  func.func @stages(%x: tensor<?x4xf32> {nn.input = "x"} loc("tests/programs/stages.irn":6:14)) -> tensor<?x4xf32> {
    %h = kernel.fused "elementwise" (%x) {memplan.buffers = ["ws0"], cpu.kernel = "k0_mul_add_relu", cpu.site = 0 : i64} : (tensor<?x4xf32>) -> tensor<?x4xf32> {
    ^bb0(%0: tensor<?x4xf32> loc(unknown)):
      %1 = nn.constant dense<1.35914099> : tensor<f32> loc("tests/programs/stages.irn":7:28)
      %2 = nn.constant dense<1.000000e+00> : tensor<f32> loc("tests/programs/stages.irn":7:35)
      %3 = nn.mul %0, %1 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:16)
      %4 = nn.add %3, %2 : (tensor<?x4xf32>, tensor<f32>) -> tensor<?x4xf32> loc("tests/programs/stages.irn":7:35)
      %h_1 = nn.relu %4 : tensor<?x4xf32> loc("tests/programs/stages.irn":7:9)
      kernel.yield %h_1 : tensor<?x4xf32> loc(unknown)
    } loc("tests/programs/stages.irn":7:9)
    %0 = nn.softmax %h {memplan.buffers = ["fresh"], cpu.kernel = "k1_softmax", cpu.site = 1 : i64, axis = 1 : i64} : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
    func.return %0 : tensor<?x4xf32> loc("tests/programs/stages.irn":8:12)
  } loc("tests/programs/stages.irn":6:1)
} loc(unknown)
// -----// kernels: the Numba module `irnet compile` writes //----- //
