package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// SignIn signs in through the JSON API (POST /api/v1/signin), as a mobile
// app does, presenting deviceToken when it is not empty, and returns the
// session token and the device token to present next time. The server must
// not ask for device approval or a second factor (the benchmarks run it
// with MOAT_SECURITY_DEVICE_APPROVAL=false).
func (m *Moat) SignIn(ctx context.Context, client *http.Client, email, password, deviceToken string) (session, device string, err error) {
	return SignIn(ctx, client, m.URL, email, password, deviceToken)
}

// SignIn is Moat.SignIn against the moat at baseURL.
func SignIn(ctx context.Context, client *http.Client, baseURL, email, password, deviceToken string) (session, device string, err error) {
	body, err := json.Marshal(map[string]string{"email": email, "password": password, "device_token": deviceToken})
	if err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/signin", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct {
		Step         string `json:"step"`
		SessionToken string `json:"session_token"`
		DeviceToken  string `json:"device_token"`
		Error        struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", "", fmt.Errorf("sign-in: status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || out.Step != "done" || out.SessionToken == "" {
		return "", "", fmt.Errorf("sign-in: status %d, step %q, error %q", resp.StatusCode, out.Step, out.Error.Code)
	}
	if out.DeviceToken == "" {
		out.DeviceToken = deviceToken
	}
	return out.SessionToken, out.DeviceToken, nil
}

// LoadAverage is the first line of /proc/loadavg ("1.20 0.95 0.80 ..."),
// trimmed to the three averages; the machine may be shared, so reports
// print it next to their figures.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
