"""The conformance suite: run it with ``aether-conformance run MODULE:ATTR`` or
``pytest --pyargs aether_conformance.suite --aether-store MODULE:ATTR``.

Every test cites the catalog requirement(s) it checks with
``@pytest.mark.requirement``; each uses fresh actor ids, so a store never
needs a reset between tests or runs.
"""
