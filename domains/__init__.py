"""seqssm.domains: domain plugins (dna, audio), each registered through the `seqssm.domains` entry-point group.

A plugin imports the core; the core never imports a plugin.
"""
