# Sourced by build scripts: maps an arch name to Go and C toolchain settings.
# Sets GOARCH GOARM GOMIPS CC TRIPLE for $1 (amd64 armel armhf arm64 mipsel).
# vws_native_arch prints the name of this machine's arch (for make install, LuaRocks).
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

vws_native_arch() {
	case $(uname -m) in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	armv7* | armv8l) echo armhf ;;
	arm*) echo armel ;;
	mips*) echo mipsel ;;
	*) echo "unknown machine $(uname -m) (amd64 armel armhf arm64 mipsel)" >&2; return 2 ;;
	esac
}

# vws_default_variant ARCH: the variant installed when none is named: in process where Go
# builds c-shared, out of process (the .so + vws-helper) on MIPS.
vws_default_variant() {
	case $1 in
	mipsel) echo oop ;;
	*) echo inproc ;;
	esac
}
