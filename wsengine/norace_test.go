//go:build !race

package wsengine

// raceOn: the race detector is on (it changes stack and heap sizes).
const raceOn = false
