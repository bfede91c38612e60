"""One module per backend; each provides ``OPS`` (an OpFamily) and ``unavailable_reason(device)``.

They are imported lazily by ``cifarconv.registry`` the first time a backend is asked for.
"""
