# bash completion for nemotron; load with: source <(nemotron completion bash)
# The words typed so far go to the hidden `nemotron __complete`, which prints one candidate a line
# (`value<TAB>description`) and a last directive line, `:files` (also offer file paths) or
# `:nofiles`. The line is split on blanks only, so `--config=tiny` and `NAME:v1` stay one word.
_nemotron() {
  local line="${COMP_LINE:0:COMP_POINT}" cur="" entry value directive=":files" trim=0
  local -a words out
  read -ra words <<<"$line"
  if [[ "$line" != *[[:space:]] && ${#words[@]} -gt 0 ]]; then
    cur="${words[${#words[@]}-1]}"
    unset 'words[${#words[@]}-1]'
  fi
  COMPREPLY=()
  mapfile -t out < <("${words[0]}" __complete "${words[@]:1}" "$cur" 2>/dev/null)
  # bash replaces only the part of the word after the last '=' or ':' (COMP_WORDBREAKS).
  if [[ "$cur" == *[=:]* ]]; then
    local tail="${cur##*[=:]}"
    trim=$((${#cur} - ${#tail}))
  fi
  for entry in "${out[@]}"; do
    case "$entry" in
      :files | :nofiles) directive="$entry" ;;
      *)
        value="${entry%%$'\t'*}"
        COMPREPLY+=("${value:trim}")
        ;;
    esac
  done
  if [[ "$directive" == ":files" ]]; then compopt -o default 2>/dev/null; fi
  if [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *[=:] ]]; then
    compopt -o nospace 2>/dev/null
  fi
  return 0
}
complete -F _nemotron nemotron
