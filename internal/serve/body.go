package serve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// BodyError says why a request body could not be read, for the answer:
// too large (413), not received in time (408, the Limits' body timeout),
// or malformed or broken off (400). reason is a short metric label.
type BodyError struct {
	Status int
	Reason string
	Msg    string
}

func (e *BodyError) Error() string { return e.Msg }

// ReadBody reads r's body up to max bytes. On a body over max it sets
// Connection: close (the rest is not read).
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *BodyError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err == nil {
		return body, nil
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		w.Header().Set("Connection", "close")
		return nil, &BodyError{http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body too large (max %d bytes)", max)}
	case isTimeout(err):
		return nil, &BodyError{http.StatusRequestTimeout, "body_timeout", "request body not received in time"}
	default:
		return nil, &BodyError{http.StatusBadRequest, "bad_body", "Error reading request body: " + err.Error()}
	}
}
