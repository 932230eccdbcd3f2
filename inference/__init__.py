"""Qt-free engine: slides, models, inference, explanations, results."""

import os

# torch's OpenMP threads otherwise spin while they wait for work, taking CPU from the
# patch readers (and, in the viewer, from the window); set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
