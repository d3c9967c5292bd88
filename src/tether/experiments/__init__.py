"""Experiments as the user sees them: the read and manage side of the recorded refs.

`index` is the read model of `refs/tether/exps/` (a cache: deleting it loses
nothing); `explore` and `filtering` answer queries; `resolve` turns names into
experiments; `compare` diffs them; `manage` applies, branches, renames and removes
them; `gc` computes what the cache must keep.
"""
