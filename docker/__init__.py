"""Container recipes. A package only so that the device Dockerfiles and run scripts install as package data
(``snp_edge.docker``) and every bundle can carry them, also from a non-editable install."""
