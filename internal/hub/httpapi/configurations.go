package httpapi

import (
	"net/http"
	"strconv"

	"github.com/iotplan/iotplan/internal/hub/adm"
	"github.com/iotplan/iotplan/internal/hub/huberr"
)

// Configurations is the ADM engine; *adm.Manager satisfies it.
type Configurations interface {
	Put(c adm.Configuration, ifMatch string) (adm.Configuration, error)
	Get(id string) (adm.Configuration, error)
	List(top int) []adm.Configuration
	Delete(id, ifMatch string) error
	TestQueries(in adm.TestQueriesInput) adm.TestQueriesResult
}

func (s *Server) configs() (Configurations, error) {
	if s.opts.Configurations == nil {
		return nil, huberr.New(huberr.ServiceUnavailable, "Configurations are not available on this hub.")
	}
	return s.opts.Configurations, nil
}

// listConfigurations is GET /configurations?top=n (no paging, as the hub documents; the
// default is all, at most adm.MaxConfigurations).
func (s *Server) listConfigurations(_ http.ResponseWriter, r *http.Request) (any, error) {
	c, err := s.configs()
	if err != nil {
		return nil, err
	}
	top := 0
	if t := r.URL.Query().Get("top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return nil, huberr.New(huberr.ArgumentInvalid, "top must be a positive number.")
		}
		top = n
	}
	return c.List(top), nil
}

func (s *Server) getConfiguration(_ http.ResponseWriter, r *http.Request) (any, error) {
	c, err := s.configs()
	if err != nil {
		return nil, err
	}
	return c.Get(r.PathValue("id"))
}

func (s *Server) putConfiguration(_ http.ResponseWriter, r *http.Request) (any, error) {
	c, err := s.configs()
	if err != nil {
		return nil, err
	}
	var cfg adm.Configuration
	if err := decodeBody(r, &cfg); err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if cfg.ID == "" {
		cfg.ID = id
	}
	if cfg.ID != id {
		return nil, huberr.New(huberr.ArgumentInvalid, "The id in the body (%s) does not match the one in the path (%s).", cfg.ID, id)
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return c.Put(cfg, im)
}

func (s *Server) deleteConfiguration(_ http.ResponseWriter, r *http.Request) (any, error) {
	c, err := s.configs()
	if err != nil {
		return nil, err
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return nil, c.Delete(r.PathValue("id"), im)
}

func (s *Server) testConfigurationQueries(_ http.ResponseWriter, r *http.Request) (any, error) {
	c, err := s.configs()
	if err != nil {
		return nil, err
	}
	var in adm.TestQueriesInput
	if err := decodeBody(r, &in); err != nil {
		return nil, err
	}
	return c.TestQueries(in), nil
}
