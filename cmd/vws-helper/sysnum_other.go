//go:build !mips && !mipsle && !mips64 && !mips64le

package main

const sysPidfdOpen = 434 // the number every other Linux architecture shares
