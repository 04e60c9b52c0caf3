"""lossgen.search: strategies that propose candidate loss programs (see DESIGN.md).

This directory sits at the top of the repository but is installed and imported only as
``lossgen.search`` (setuptools package-dir mapping).
"""
