//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsTimeout bounds the wait for the composer's counts to reach
// spire-server's /metrics: the composer sends them every 10 s.
const metricsTimeout = 25 * time.Second

// Prometheus names of the composer's metrics: SPIRE prefixes its service
// name to the key the plugin sends (pkg/plugin/credentialcomposer/delegation
// README, Metrics).
const (
	metricComposed = "spire_server_agentid_composer_tokens_composed"
	metricRefused  = "spire_server_agentid_composer_tokens_refused"
)

// step10 scrapes spire-server's /metrics and checks that agentid-composer
// reported through SPIRE's metrics host service what the earlier steps made
// it do: the tokens it composed, the refusals of step 6's revoked
// delegation (revoked, or unknown once a replica rebuilt after step 8's
// crash no longer holds it), step 5's agent asking under another's
// delegation (foreign), and the tokens it refused as stale while
// agentid-server was down in step 8: failing closed shows in the metrics.
func (sc *scenario) step10(t *testing.T) {
	url := sc.st.SPIRE.MetricsURL()
	if url == "" {
		t.Fatal("spire-server serves no Prometheus metrics (the stack starts it with ServerOptions.Prometheus)")
	}
	deadline := time.Now().Add(metricsTimeout)
	for {
		samples, err := scrape(url)
		composed := samples.sum(metricComposed, nil)
		revoked := samples.sum(metricRefused, map[string]string{"reason": "revoked"})
		unknown := samples.sum(metricRefused, map[string]string{"reason": "unknown"})
		stale := samples.sum(metricRefused, map[string]string{"reason": "stale"})
		foreign := samples.sum(metricRefused, map[string]string{"reason": "foreign"})
		if err == nil && composed > 0 && revoked+unknown > 0 && stale > 0 && foreign > 0 {
			t.Logf("agentid-composer through spire-server's /metrics: %s", samples.named("spire_server_agentid_composer_"))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s of scraping %s: tokens_composed %g, tokens_refused revoked %g, unknown %g, stale %g, foreign %g (want each > 0, revoked or unknown), error %v; composer series: %s",
				metricsTimeout, url, composed, revoked, unknown, stale, foreign, err, samples.named("spire_server_agentid_composer_"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// samples are the series of one scrape, by metric family name.
type samples map[string]*dto.MetricFamily

// sum adds the values of the series called name that carry every label of
// want (other labels, such as SPIRE's host, are ignored).
func (ss samples) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, m := range ss[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && have[k] == v
		}
		if match {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return total
}

// named lists the series whose name starts with prefix, for the log.
func (ss samples) named(prefix string) string {
	var lines []string
	for name, f := range ss {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %g", name, strings.Join(labels, ","),
				m.GetCounter().GetValue()+m.GetGauge().GetValue()+m.GetUntyped().GetValue()))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

// scrape reads url in the Prometheus text format.
func scrape(url string) (samples, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s %q", url, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
}
