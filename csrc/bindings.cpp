// The only file that includes pybind11: argument checks, GIL release, module definition.
#include <pybind11/pybind11.h>

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "badpix compiled core (private; use badpix.robust)";
}
