// Command go-agent is an example Go agent: it asks agentid-server for a
// delegation from the user whose OIDC token it was given, calls a service
// for that user over mTLS with the delegated JWT-SVID, prints the service's
// answer, and revokes the delegation when done. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentid/agentid/pkg/agentclient"
	"github.com/agentid/agentid/pkg/delegation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// config is what the agent needs; every field has a flag and an
// environment variable.
type config struct {
	workloadAPI string
	serverAddr  string
	serverID    spiffeid.ID
	serviceURL  string
	serviceID   spiffeid.ID
	audience    string
	userToken   string
	scopes      []string
	ttl         time.Duration
	intent      string
	keep        bool
	// delegation, when set, is an existing delegation to act under (for
	// example a sub-delegation another agent made for this one): no user
	// token is needed and nothing is created or revoked.
	delegation delegation.ID
}

func main() {
	c, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-agent:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "go-agent:", err)
		os.Exit(1)
	}
}

func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	var c config
	var serverID, serviceID, scopes, tokenFile, existing string
	fs.StringVar(&c.workloadAPI, "workload-api", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address (env SPIFFE_ENDPOINT_SOCKET)")
	fs.StringVar(&c.serverAddr, "server-addr", os.Getenv("AGENTID_SERVER_ADDR"), "agentid-server mTLS address (env AGENTID_SERVER_ADDR)")
	fs.StringVar(&serverID, "server-id", os.Getenv("AGENTID_SERVER_ID"), "agentid-server's SPIFFE ID (env AGENTID_SERVER_ID)")
	fs.StringVar(&c.serviceURL, "service-url", os.Getenv("SERVICE_URL"), "the service's https URL, e.g. https://127.0.0.1:8443/whoami (env SERVICE_URL)")
	fs.StringVar(&serviceID, "service-id", os.Getenv("SERVICE_ID"), "the SPIFFE ID the service must present (env SERVICE_ID)")
	fs.StringVar(&c.audience, "audience", os.Getenv("SERVICE_AUDIENCE"), "token audience; default the service's SPIFFE ID (env SERVICE_AUDIENCE)")
	fs.StringVar(&tokenFile, "user-token-file", os.Getenv("USER_TOKEN_FILE"), "file holding the user's OIDC ID token; default env USER_TOKEN")
	fs.StringVar(&scopes, "scopes", envOr("SCOPES", "campaigns:read"), "space-separated scopes to ask for (env SCOPES)")
	fs.DurationVar(&c.ttl, "ttl", 15*time.Minute, "delegation lifetime to ask for")
	fs.StringVar(&c.intent, "intent", "example: ask the service who is calling", "the user's request, for audit")
	fs.BoolVar(&c.keep, "keep", false, "do not revoke the delegation at the end")
	fs.StringVar(&existing, "delegation", os.Getenv("AGENTID_DELEGATION"), "act under this existing delegation instead of creating one from a user token (env AGENTID_DELEGATION)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var err error
	var problems []string
	if c.serverID, err = spiffeid.FromString(serverID); err != nil {
		problems = append(problems, "-server-id: "+err.Error())
	}
	if c.serviceID, err = spiffeid.FromString(serviceID); err != nil {
		problems = append(problems, "-service-id: "+err.Error())
	}
	if c.serverAddr == "" {
		problems = append(problems, "-server-addr is required")
	}
	if !strings.HasPrefix(c.serviceURL, "https://") {
		problems = append(problems, "-service-url must be an https:// URL")
	}
	if existing != "" {
		if c.delegation, err = delegation.ParseID(existing); err != nil {
			problems = append(problems, "-delegation: "+err.Error())
		}
	}
	c.userToken = os.Getenv("USER_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			problems = append(problems, err.Error())
		}
		c.userToken = strings.TrimSpace(string(b))
	}
	if c.userToken == "" && existing == "" {
		problems = append(problems, "a user token is required (-user-token-file or USER_TOKEN), or -delegation")
	}
	c.scopes = strings.Fields(scopes)
	if len(problems) > 0 {
		return config{}, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

// run is the agent: delegate, call, print, revoke.
func run(ctx context.Context, c config, out io.Writer) error {
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	agent, err := agentclient.New(startCtx, agentclient.Config{WorkloadAPIAddr: c.workloadAPI})
	if err != nil {
		return err
	}
	defer agent.Close()
	server, err := agent.DialServer(c.serverAddr, c.serverID)
	if err != nil {
		return err
	}
	defer server.Close()

	id := c.delegation
	if id.IsZero() {
		d, err := server.CreateDelegation(startCtx, agentclient.CreateRequest{
			UserToken: c.userToken, Agent: agent.ID(), Scopes: c.scopes, TTL: c.ttl, Intent: c.intent,
		})
		if err != nil {
			return err
		}
		id = d.ID
		fmt.Fprintf(os.Stderr, "go-agent: %s acts for %s under %s (scopes %s, until %s)\n",
			agent.ID(), d.User, d.ID, d.Scopes, d.ExpiresAt.Format(time.RFC3339))
		if !c.keep {
			defer func() {
				revokeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := server.RevokeDelegation(revokeCtx, d.ID, "task done"); err != nil {
					fmt.Fprintln(os.Stderr, "go-agent: revoke:", err)
				}
			}()
		}
	} else {
		fmt.Fprintf(os.Stderr, "go-agent: %s acts under the existing delegation %s\n", agent.ID(), id)
	}

	tr, err := agent.Transport(c.serviceID, c.audience)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(agentclient.WithDelegation(ctx, id), http.MethodGet, c.serviceURL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("service answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = out.Write(body)
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
