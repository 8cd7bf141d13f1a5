// Package image holds what adhocd's container image needs besides the
// Dockerfile at the repository's root: config.yaml, the image's own
// configuration (storage on the /data volume, metrics on :9090), the
// notices tool (image/notices, package image/licenses) that writes the
// third-party licences into the image and refuses unaccepted ones, and the
// test that proves the image without a container engine.
//
// No container engine runs where adhocd is tested, so TestImage reads the
// Dockerfile and does what a builder would: it runs the build stage's go
// commands, assembles the final stage's root filesystem from its COPY lines
// over what the distroless base provides, and runs ENTRYPOINT and CMD
// chrooted into that tree as the USER, the way `docker run` would. The test
// follows the Dockerfile, so a change there is tested as it is written; a
// Dockerfile instruction the test does not know fails it rather than being
// ignored.
//
// The folder has no Go API: this file only documents it.
package image
