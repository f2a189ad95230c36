"""Rule files -> compiled rules -> matches.

``schema`` describes what users write, ``loader`` turns rule files into :class:`Rule` values,
``text`` normalises and tokenises text, ``engine`` matches articles against compiled rules.
"""
