package orchestrator

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"byoc/internal/serve"
	"byoc/pm"
	"byoc/wire"
)

// maxRegistrationBytes bounds a registration body.
const maxRegistrationBytes = 64 << 10

// authorized checks the orchestrator secret, sent raw in Authorization as
// go-livepeer workers do (a "Bearer " prefix is accepted too), in constant time.
func (o *Orchestrator) authorized(r *http.Request) bool {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	return subtle.ConstantTimeCompare([]byte(got), []byte(o.cfg.Secret)) == 1
}

// workerRequest checks a registration call (POST, secret) and reads its
// body; on failure it has answered and returns false.
func (o *Orchestrator) workerRequest(w http.ResponseWriter, r *http.Request, endpoint string) ([]byte, bool) {
	if r.Method != http.MethodPost {
		o.refused(w, endpoint, &refusal{"method_not_allowed", http.StatusMethodNotAllowed, "Method not allowed"})
		return nil, false
	}
	if !o.authorized(r) {
		o.refused(w, endpoint, &refusal{"bad_secret", http.StatusUnauthorized, "invalid authorization"})
		return nil, false
	}
	body, berr := serve.ReadBody(w, r, maxRegistrationBytes)
	if berr != nil {
		o.refused(w, endpoint, &refusal{berr.Reason, berr.Status, berr.Msg})
		return nil, false
	}
	return body, true
}

// handleRegister adds or updates a worker for a capability.
func (o *Orchestrator) handleRegister(w http.ResponseWriter, r *http.Request) {
	body, ok := o.workerRequest(w, r, "register")
	if !ok {
		return
	}
	var c wire.ExternalCapability
	if err := json.Unmarshal(body, &c); err != nil {
		o.refused(w, "register", &refusal{"bad_request", http.StatusBadRequest, "Error registering capability: " + err.Error()})
		return
	}
	if err := c.Validate(); err != nil {
		o.refused(w, "register", &refusal{"bad_request", http.StatusBadRequest, "Error registering capability: " + err.Error()})
		return
	}
	price := c.PriceWeiPerUnit()
	if _, err := pm.WirePrice(price); err != nil {
		o.refused(w, "register", &refusal{"bad_price", http.StatusBadRequest, "Error registering capability: price " + price.RatString() + " wei per second cannot be quoted (numerator and denominator must fit 64 bits)"})
		return
	}
	o.reg.register(c.Name, c.Description, strings.TrimSuffix(c.URL, "/"), c.Token, int(c.Capacity), price)
	o.log.Info("worker registered", "capability", c.Name, "url", c.URL, "capacity", c.Capacity, "price_wei_per_second", price.RatString())
	o.m.capabilities.Set(float64(len(o.reg.list())))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}

// handleUnregister removes a capability; the body is its raw name.
func (o *Orchestrator) handleUnregister(w http.ResponseWriter, r *http.Request) {
	body, ok := o.workerRequest(w, r, "unregister")
	if !ok {
		return
	}
	name := string(body)
	existed := o.reg.unregister(name)
	o.log.Info("capability unregistered", "capability", name, "existed", existed)
	o.m.capabilities.Set(float64(len(o.reg.list())))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}
