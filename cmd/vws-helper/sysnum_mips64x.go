//go:build mips64 || mips64le

package main

const sysPidfdOpen = 5434 // n64: 5000 + 434
