//go:build mips || mipsle

package main

const sysPidfdOpen = 4434 // o32: 4000 + 434
