"""Test kits shipped with cogsync: contract suites, fakes and stateful machines."""
