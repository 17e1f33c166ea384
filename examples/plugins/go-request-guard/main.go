// request-guard: a Solstice pre_auth plugin in Go, served with HashiCorp go-plugin.
//
// It blocks requests whose body is larger than max_body_bytes or contains one of
// blocked_words (case-insensitive). Config: {"blocked_words": ["secret"], "max_body_bytes": 65536}
//
// Started by Solstice (file:// or oci://) it speaks go-plugin's handshake. With -listen ADDR (or
// SOLSTICE_PLUGIN_LISTEN) it is a plain gRPC server for grpc://ADDR instead.
//
// Build (GOPATH mode, no module proxy needed):
//
//	GOPATH=$REPO/go:/usr/share/gocode GO111MODULE=off go build -o request-guard ./examples/plugins/go-request-guard
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pluginv1 "solstice/pluginv1"
)

// Handshake must match solstice/protocol/handshake.py.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "SOLSTICE_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "d6f3a1c08e5b4f27",
}

const configSchema = `{"type":"object","properties":{` +
	`"blocked_words":{"type":"array","items":{"type":"string"}},` +
	`"max_body_bytes":{"type":"integer","minimum":0}},"additionalProperties":false}`

type config struct {
	BlockedWords []string `json:"blocked_words"`
	MaxBodyBytes int      `json:"max_body_bytes"`
}

// settings is one configuration; the host may send several, one per config_id.
type settings struct {
	words [][]byte
	max   int
}

type guard struct {
	pluginv1.UnimplementedPluginServer
	mu      sync.RWMutex
	configs map[string]settings
}

func (g *guard) GetInfo(ctx context.Context, _ *pluginv1.GetInfoRequest) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{
		Name:             "request-guard",
		Version:          "1.0.0",
		Description:      "Blocks oversized requests and requests containing blocked words.",
		Hooks:            []pluginv1.Hook{pluginv1.Hook_HOOK_PRE_AUTH},
		ConfigSchemaJson: configSchema,
	}, nil
}

func (g *guard) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	var c config
	if req.ConfigJson != "" {
		dec := json.NewDecoder(strings.NewReader(req.ConfigJson))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid config: %v", err)
		}
	}
	if c.MaxBodyBytes < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_body_bytes must be >= 0, got %d", c.MaxBodyBytes)
	}
	words := make([][]byte, 0, len(c.BlockedWords))
	for _, w := range c.BlockedWords {
		if w != "" {
			words = append(words, bytes.ToLower([]byte(w)))
		}
	}
	g.mu.Lock()
	if g.configs == nil {
		g.configs = map[string]settings{}
	}
	g.configs[req.ConfigId] = settings{words: words, max: c.MaxBodyBytes}
	g.mu.Unlock()
	return &pluginv1.ConfigureResponse{}, nil
}

func refuse(status int32, reason string) *pluginv1.HookResponse {
	body, _ := json.Marshal(map[string]map[string]string{"error": {"message": reason, "type": "request_blocked"}})
	return &pluginv1.HookResponse{Action: &pluginv1.HookResponse_Block{Block: &pluginv1.Block{
		Status:  status,
		Headers: []*pluginv1.Header{{Name: "Content-Type", Value: "application/json"}},
		Body:    body,
	}}}
}

func (g *guard) PreAuth(ctx context.Context, req *pluginv1.PreAuthRequest) (*pluginv1.HookResponse, error) {
	g.mu.RLock()
	s, configured := g.configs[req.GetContext().GetConfigId()]
	g.mu.RUnlock()
	if !configured {
		// The protocol asks for this answer so the host sends the config and retries.
		return nil, status.Error(codes.FailedPrecondition, "plugin is not configured with this config_id; the host must call Configure")
	}
	words, max := s.words, s.max
	body := req.GetRequest().GetBody()
	if max > 0 && len(body) > max {
		return refuse(413, fmt.Sprintf("request body of %d bytes exceeds the %d byte limit", len(body), max)), nil
	}
	if len(words) > 0 {
		lower := bytes.ToLower(body)
		for _, w := range words {
			if bytes.Contains(lower, w) {
				return refuse(403, fmt.Sprintf("request contains the blocked word %q", w)), nil
			}
		}
	}
	return &pluginv1.HookResponse{Action: &pluginv1.HookResponse_Proceed{Proceed: &pluginv1.Continue{}}}, nil
}

// grpcPlugin plugs the service into go-plugin's gRPC server.
type grpcPlugin struct {
	plugin.Plugin
	impl *guard
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, p.impl)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, fmt.Errorf("request-guard is a plugin, not a host")
}

// serveStandalone is the reference page's gRPC wrapper: the same service on a TCP listener, plus
// the standard health service under the name Solstice checks ("plugin"), drained on SIGTERM.
func serveStandalone(addr string, impl *guard) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginv1.RegisterPluginServer(server, impl)
	healthServer := health.NewServer()
	healthServer.SetServingStatus("plugin", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthServer)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		healthServer.Shutdown()
		server.GracefulStop()
	}()
	log.Printf("request-guard serving gRPC on %s", lis.Addr())
	return server.Serve(lis)
}

func main() {
	listen := flag.String("listen", os.Getenv("SOLSTICE_PLUGIN_LISTEN"),
		"serve plain gRPC on this address (for grpc://) instead of running under a host")
	flag.Parse()
	impl := &guard{}
	if *listen != "" {
		if err := serveStandalone(*listen, impl); err != nil {
			log.Fatalf("request-guard: %v", err)
		}
		return
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         map[string]plugin.Plugin{"solstice": &grpcPlugin{impl: impl}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
