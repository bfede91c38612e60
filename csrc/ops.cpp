// The schema of the extension's ops: cifarconv::ext_<op>, one per op of the op layer.
// They must read exactly like cifarconv/ops/schema.py (tests/test_extension.py checks);
// kernels are registered per device in cpu/ and cuda/, fake kernels and autograd in
// Python (cifarconv/backends/extension.py).

#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(cifarconv, m) {
  m.def("ext_conv2d(Tensor input, Tensor weight, Tensor? bias, SymInt[2] stride, SymInt[2] padding, "
        "SymInt[2] dilation, SymInt groups) -> Tensor");
  m.def("ext_conv2d_grad_input(Tensor grad_output, Tensor weight, SymInt[2] input_size, SymInt[2] stride, "
        "SymInt[2] padding, SymInt[2] dilation, SymInt groups) -> Tensor");
  m.def("ext_conv2d_grad_weight(Tensor grad_output, Tensor input, SymInt[2] kernel_size, SymInt[2] stride, "
        "SymInt[2] padding, SymInt[2] dilation, SymInt groups, bool bias) -> (Tensor, Tensor)");
  m.def("ext_im2col(Tensor input, SymInt[2] kernel_size, SymInt[2] dilation, SymInt[2] padding, "
        "SymInt[2] stride) -> Tensor");
  m.def("ext_col2im(Tensor input, SymInt[2] output_size, SymInt[2] kernel_size, SymInt[2] dilation, "
        "SymInt[2] padding, SymInt[2] stride) -> Tensor");
}

// `import cifarconv._C` loads this library, which registers the ops above.  The module
// itself only says whether CUDA kernels were compiled in.  PyInit__C is the only symbol
// the library exports (csrc/exports.map).
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "cifarconv's C++/CUDA conv kernels", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
#ifdef WITH_CUDA
  const long with_cuda = 1;
#else
  const long with_cuda = 0;
#endif
  if (m != nullptr && PyModule_AddIntConstant(m, "with_cuda", with_cuda) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
