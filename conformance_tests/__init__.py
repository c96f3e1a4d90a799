"""The backend conformance suite: what every wfe store backend must do, checked by hypothesis.

Run it against any store URL::

    pytest conformance_tests --store-url memory://scratch --store-url s3://bucket/prefix
    wfe check-store s3://bucket/prefix

Without ``--store-url`` it runs every built-in backend in :mod:`conformance_tests.backends`
that can start here. Each test opens a fresh, empty store under a new sub-prefix of the
URL. ``--conformance-profile soak`` (or ``WFE_CONFORMANCE_PROFILE=soak``) runs many more
examples and state machine steps than the quick default.
"""
