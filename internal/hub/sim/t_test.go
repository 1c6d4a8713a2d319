package sim
import ("testing";"time";"context";"path/filepath";"go.etcd.io/bbolt";"github.com/iotplan/iotplan/internal/hub/link";"github.com/iotplan/iotplan/internal/hub/registry")
func TestX(t *testing.T){
 db,_:=bbolt.Open(filepath.Join(t.TempDir(),"x.db"),0o600,nil)
 var reg *registry.Registry
 l:=link.New(link.Options{OnConnect: func(id string, on bool){ reg.SetConnectionState(id,on,time.Now()) }})
 reg,_=registry.Open(db, registry.Options{})
 t0:=time.Now(); s,err:=Start(context.Background(),nil,db,reg,reg,l); t.Log("start default fleet (fsync)",time.Since(t0),err)
 t0=time.Now(); s.Close(); t.Log("close",time.Since(t0))
}
