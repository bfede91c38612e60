"""``python -m cifarconv.check``: cifarconv's checks on a backend of yours, as a table
(an application on top of `cifarconv.testing`; the library never imports it)."""
