// cri-client is a grpc-go CRI client dialing the way crictl and kubelet do: the bare
// socket path as the target plus a unix context dialer, which makes grpc-go send the
// path as the HTTP/2 :authority. berth's e2e tests drive it; every command prints one
// JSON object on stdout and exits non-zero with the gRPC status on failure.
//
//	cri-client SOCKET version
//	cri-client SOCKET status
//	cri-client SOCKET pull IMAGE
//	cri-client SOCKET runp NAME NAMESPACE UID
//	cri-client SOCKET stopp ID
//	cri-client SOCKET rmp ID
//	cri-client SOCKET create POD_ID NAME IMAGE [COMMAND...]
//	cri-client SOCKET start CONTAINER_ID
//	cri-client SOCKET exec CONTAINER_ID CMD...
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "berth.test/cri/runtimev1"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: cri-client SOCKET COMMAND [ARGS]"))
	}
	socket, cmd, args := os.Args[1], os.Args[2], os.Args[3:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", addr)
	}
	conn, err := grpc.DialContext(ctx, socket, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	rt := pb.NewRuntimeServiceClient(conn)
	img := pb.NewImageServiceClient(conn)

	var resp interface{}
	switch {
	case cmd == "version":
		resp, err = rt.Version(ctx, &pb.VersionRequest{})
	case cmd == "status":
		resp, err = rt.Status(ctx, &pb.StatusRequest{})
	case cmd == "pull" && len(args) == 1:
		resp, err = img.PullImage(ctx, &pb.PullImageRequest{Image: &pb.ImageSpec{Image: args[0]}})
	case cmd == "runp" && len(args) == 3:
		resp, err = rt.RunPodSandbox(ctx, &pb.RunPodSandboxRequest{Config: &pb.PodSandboxConfig{
			Metadata: &pb.PodSandboxMetadata{Name: args[0], Namespace: args[1], Uid: args[2]},
			Hostname: args[0],
		}})
	case cmd == "stopp" && len(args) == 1:
		resp, err = rt.StopPodSandbox(ctx, &pb.StopPodSandboxRequest{PodSandboxId: args[0]})
	case cmd == "rmp" && len(args) == 1:
		resp, err = rt.RemovePodSandbox(ctx, &pb.RemovePodSandboxRequest{PodSandboxId: args[0]})
	case cmd == "create" && len(args) >= 3:
		resp, err = rt.CreateContainer(ctx, &pb.CreateContainerRequest{
			PodSandboxId:  args[0],
			Config:        &pb.ContainerConfig{Metadata: &pb.ContainerMetadata{Name: args[1]}, Image: &pb.ImageSpec{Image: args[2]}, Command: args[3:]},
			SandboxConfig: &pb.PodSandboxConfig{},
		})
	case cmd == "start" && len(args) == 1:
		resp, err = rt.StartContainer(ctx, &pb.StartContainerRequest{ContainerId: args[0]})
	case cmd == "exec" && len(args) >= 2:
		resp, err = rt.ExecSync(ctx, &pb.ExecSyncRequest{ContainerId: args[0], Cmd: args[1:], Timeout: 10})
	default:
		err = fmt.Errorf("unknown command or wrong arguments: %s %v", cmd, args)
	}
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	if s, ok := status.FromError(err); ok {
		fmt.Fprintf(os.Stderr, "code=%s message=%s\n", s.Code(), s.Message())
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(1)
}
