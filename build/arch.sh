# Sourced by build scripts: maps an arch name to Go and C toolchain settings.
# Sets GOARCH GOARM GOMIPS CC TRIPLE for $1 (amd64 armel armhf arm64 mipsel).
vws_arch() {
	GOARM= GOMIPS=
	case $1 in
	amd64) GOARCH=amd64 CC=${VWS_CC:-gcc} TRIPLE=x86_64-linux-gnu ;;
	armel) GOARCH=arm GOARM=5 CC=${VWS_CC:-arm-linux-gnueabi-gcc} TRIPLE=arm-linux-gnueabi ;;
	armhf) GOARCH=arm GOARM=7 CC=${VWS_CC:-arm-linux-gnueabihf-gcc} TRIPLE=arm-linux-gnueabihf ;;
	arm64) GOARCH=arm64 CC=${VWS_CC:-aarch64-linux-gnu-gcc} TRIPLE=aarch64-linux-gnu ;;
	mipsel) GOARCH=mipsle GOMIPS=softfloat CC=${VWS_CC:-mipsel-linux-gnu-gcc} TRIPLE=mipsel-linux-gnu ;;
	*) echo "unknown arch $1 (amd64 armel armhf arm64 mipsel)" >&2; return 2 ;;
	esac
	export GOARCH GOARM GOMIPS CC TRIPLE
}
