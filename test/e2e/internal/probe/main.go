// Command probe is the end-to-end suite's bare workload: one Workload API
// call, its outcome printed as one JSON line. The suite starts it with an
// agent manifest in AGENTID_MANIFEST (or a tampered one, or none), so that
// spire-agent attests this very process through agentid-attestor, and reads
// what SPIRE answered: the X509-SVIDs it was issued, or a JWT-SVID, or the
// gRPC code and message of the refusal.
//
//	probe x509
//	probe jwt -spiffe-id spiffe://example.org/agent/orchestrator -audience A -audience B
//	probe call -url https://127.0.0.1:8443/whoami -service-id spiffe://example.org/svc/crm -delegation dlg_...
//	probe call -url ... -service-id ... -token <JWT-SVID>
//
// call is an agent calling a service with pkg/agentclient: mTLS with the
// process's X509-SVID, the service's SPIFFE ID checked, and the delegated
// JWT-SVID for -delegation attached as a bearer token (or, with -token, a
// given token replayed: a token issued before a revocation, say). It prints
// the HTTP status and body, or the code of the refusal that stopped the
// call before it was sent.
//
// With -until-refused D, call repeats the request every 50 ms, for at most
// D, until the service answers anything but 200; after the first 200 it
// creates the file -ready-file (so a test knows the token was accepted
// before it revokes). The result then holds the number of accepted calls
// and when the refused answer arrived.
//
// The Workload API address comes from SPIFFE_ENDPOINT_SOCKET. The exit code
// is 0 whenever SPIRE (or the service) answered (a refusal is a result, not a
// failure of the probe), 1 when the call could not be made, 2 for a usage
// error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/status"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
)

// Result is the probe's output line; test/e2e/stack decodes the same shape.
type Result struct {
	// Code is the gRPC code's name: "OK" when SPIRE issued.
	Code string `json:"code"`
	// Message is the refusal's message, empty on success.
	Message string `json:"message,omitempty"`
	// IDs are the SPIFFE IDs of the X509-SVIDs issued (x509).
	IDs []string `json:"ids,omitempty"`
	// Token is the JWT-SVID (jwt).
	Token string `json:"token,omitempty"`
	// Status and Body are the service's answer (call).
	Status int    `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
	// Accepted counts the 200 answers before the last one (-until-refused).
	Accepted int `json:"accepted,omitempty"`
	// AnsweredAt is when the last answer arrived (-until-refused).
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
}

// runTimeout bounds the whole run: the Workload API calls and, for call,
// the requests (-until-refused must stay below it).
const runTimeout = 30 * time.Second

type audiences []string

func (a *audiences) String() string     { return strings.Join(*a, ",") }
func (a *audiences) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: probe x509 | probe jwt -spiffe-id ID -audience A [-audience B]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	client, err := workloadapi.New(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe: failed to create Workload API client:", err)
		return 1
	}
	defer client.Close()

	var res Result
	switch args[0] {
	case "x509":
		svids, err := client.FetchX509SVIDs(ctx)
		res = outcome(err)
		for _, s := range svids {
			res.IDs = append(res.IDs, s.ID.String())
		}
	case "jwt":
		fs := flag.NewFlagSet("jwt", flag.ContinueOnError)
		subject := fs.String("spiffe-id", "", "SPIFFE ID to ask for (required)")
		var aud audiences
		fs.Var(&aud, "audience", "audience (repeat)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		id, err := spiffeid.FromString(*subject)
		if err != nil || len(aud) == 0 {
			fmt.Fprintln(os.Stderr, "probe: jwt needs -spiffe-id and at least one -audience")
			return 2
		}
		svid, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Subject: id, Audience: aud[0], ExtraAudiences: aud[1:]})
		res = outcome(err)
		if err == nil {
			res.Token = svid.Marshal()
		}
	case "call":
		var ok bool
		if res, ok = call(ctx, client, args[1:]); !ok {
			return 2
		}
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown command %q\n", args[0])
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	return 0
}

// call makes one GET to a service as an agent would.
func call(ctx context.Context, client *workloadapi.Client, args []string) (Result, bool) {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	url := fs.String("url", "", "https URL to GET (required)")
	service := fs.String("service-id", "", "the SPIFFE ID the service must present (required)")
	dlg := fs.String("delegation", "", "delegation to fetch the bearer token under")
	token := fs.String("token", "", "bearer token to send as is, instead of -delegation")
	until := fs.Duration("until-refused", 0, "repeat every 50 ms until a non-200 answer, for at most this long")
	readyFile := fs.String("ready-file", "", "with -until-refused: file created after the first 200")
	if err := fs.Parse(args); err != nil {
		return Result{}, false
	}
	serviceID, err := spiffeid.FromString(*service)
	if err != nil || *url == "" || (*dlg == "") == (*token == "") {
		fmt.Fprintln(os.Stderr, "probe: call needs -url, -service-id and one of -delegation or -token")
		return Result{}, false
	}
	agent, err := agentclient.New(ctx, agentclient.Config{})
	if err != nil {
		return outcome(err), true
	}
	defer agent.Close()
	reqCtx := ctx
	var rt http.RoundTripper
	if *dlg != "" {
		id, err := delegation.ParseID(*dlg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe: -delegation:", err)
			return Result{}, false
		}
		tr, err := agent.Transport(serviceID, "")
		if err != nil {
			return outcome(err), true
		}
		defer tr.CloseIdleConnections()
		rt, reqCtx = tr, agentclient.WithDelegation(ctx, id)
	} else {
		tr := &http.Transport{TLSClientConfig: agentclient.ClientTLSConfig(agent.SVIDs(), agent.Bundles(), tlsconfig.AuthorizeID(serviceID))}
		defer tr.CloseIdleConnections()
		rt = tr
	}
	httpClient := &http.Client{Transport: rt}
	once := func() Result {
		req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, *url, nil)
		if err != nil {
			return outcome(err)
		}
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return outcome(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return outcome(err)
		}
		return Result{Code: "OK", Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	if *until == 0 {
		return once(), true
	}
	// Bounded by -until-refused, which must stay below runTimeout.
	deadline := time.Now().Add(*until)
	accepted := 0
	for {
		r := once()
		now := time.Now()
		if r.Code != "OK" || r.Status != http.StatusOK || now.After(deadline) {
			r.Accepted, r.AnsweredAt = accepted, &now
			return r, true
		}
		accepted++
		if accepted == 1 && *readyFile != "" {
			if err := os.WriteFile(*readyFile, nil, 0o600); err != nil {
				return outcome(err), true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func outcome(err error) Result {
	if err == nil {
		return Result{Code: "OK"}
	}
	s, ok := status.FromError(err)
	if !ok {
		// Not a gRPC status at the top: keep the whole chain's text.
		return Result{Code: s.Code().String(), Message: err.Error()}
	}
	return Result{Code: s.Code().String(), Message: s.Message()}
}
