package wire

// The JSON of byoc signer's BYOC routes (docs/signer.md): a gateway that
// holds no key has its job requests signed (POST /sign-byoc-job, body: the
// JobRequest) and its jobs' tickets made (POST /generate-byoc-payment) by
// a remote signer. Amounts are decimal strings of wei.

// HeaderCustomer names, on a token request (GET /process/token), the
// remote signer's customer whose pool the token's balances should report:
// the pool (sender, capability, customer) that jobs bound to that customer
// draw from at a byoc orchestrator. go-livepeer orchestrators ignore it.
const HeaderCustomer = "Livepeer-Customer"

// Routes of byoc signer's BYOC API.
const (
	// RouteBYOCCustomer answers {"customer"}: who the signer's webhook (or
	// Signer-Auth-Id) says the caller is.
	RouteBYOCCustomer         = "/byoc-customer"
	RouteSignBYOCJob          = "/sign-byoc-job"
	RouteGenerateBYOCPayment  = "/generate-byoc-payment"
	RouteSignOrchestratorInfo = "/sign-orchestrator-info"
)

// BYOCCustomerResponse is the answer of POST /byoc-customer.
type BYOCCustomerResponse struct {
	Customer string `json:"customer"`
}

// SignBYOCJobResponse is the answer of POST /sign-byoc-job.
type SignBYOCJobResponse struct {
	// Request is the job request, bound (byoc_job in parameters, with the
	// customer) and signed by the signer's key: the Livepeer header's JSON.
	Request  JobRequest `json:"request"`
	Customer string     `json:"customer"`
}

// BYOCPaymentRequest is the body of POST /generate-byoc-payment: the
// orchestrator's offer from its job token and what the payment must be
// worth.
type BYOCPaymentRequest struct {
	// TicketParams (with expiration_params) and Price are the token's, as
	// protobuf (base64 in JSON).
	TicketParams []byte `json:"ticket_params"`
	Price        []byte `json:"price"`
	// Amount is the least the payment must be worth to the orchestrator,
	// in wei.
	Amount     string `json:"amount"`
	Capability string `json:"capability"`
	JobID      string `json:"job_id"`
	// Orchestrator is its URL, for the usage event.
	Orchestrator string `json:"orchestrator,omitempty"`
}

// BYOCCredit is one ticket of a payment, keyed and valued (wei) as the
// orchestrator credits it.
type BYOCCredit struct {
	Key    string `json:"key"`
	Amount string `json:"amount"`
}

// BYOCPaymentResponse is the answer of POST /generate-byoc-payment.
type BYOCPaymentResponse struct {
	// Payment is the Livepeer-Payment header.
	Payment  string       `json:"payment"`
	Credits  []BYOCCredit `json:"credits"`
	Customer string       `json:"customer"`
}

// SignOrchestratorInfoResponse is the answer of POST
// /sign-orchestrator-info (go-livepeer's): the signer's EIP-55 address and
// its personal signature over keccak256 of it, which is also a JobSender
// signature.
type SignOrchestratorInfoResponse struct {
	Address   string `json:"address"`
	Signature string `json:"signature"`
}
