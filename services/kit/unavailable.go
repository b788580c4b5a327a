package kit

import "github.com/deployment-engine/engine/services/bus"

// UnavailableMsg is what a command answers, with 503, when the store it
// needs does not answer.
const UnavailableMsg = "the engine's store is unavailable (its NATS servers have no quorum or are unreachable); try again once they are back"

// Unavailable tells whether err means the bus or its store cannot be
// reached now (see bus.Unavailable): such errors answer 503, never 500.
func Unavailable(err error) bool { return bus.Unavailable(err) }
