"""Everything tether stores in git: the git wrapper, ref namespaces, experiment commits."""
